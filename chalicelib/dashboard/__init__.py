"""The browser dashboard: one page and its script and style sheet, served by the API itself
(no build step, no CDN). The page asks for the API key and sends it as `x-api-key`; the
files themselves are public (`PUBLIC_ROUTES`), every API route stays behind the key."""
