"""HTTP handlers, one module per resource; ``edge/app.py`` maps paths to them."""
