"""`engagement serve`: participants measure themselves in their own browser and send numbers."""
