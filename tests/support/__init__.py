"""Test support: real upstream HTTP servers and a real gateway process launcher."""
