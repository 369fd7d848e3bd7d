"""HTTP handlers, one module per resource; ``app.py`` maps paths to them."""
