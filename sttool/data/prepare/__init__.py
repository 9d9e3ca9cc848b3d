"""Checks and conversions behind ``sttool prepare``: VTAB-1K trees and video datasets."""
