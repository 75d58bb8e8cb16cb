"""Kith's HTML pages and their files: the web client at `/` (docs/web-client.md), the API docs
(Swagger UI) at `/docs`, and the scripts, styles and icons of both under `/assets/`."""
