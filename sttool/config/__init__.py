"""Recipes and options: typed binding of YAML data with actionable errors."""
