"""Plain resource files (SVG icons, desktop integration), installed as sealcheck.resources."""
