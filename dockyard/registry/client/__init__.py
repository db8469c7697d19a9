"""The registry client: endpoints and TLS, auth challenges and credentials, pull and push."""
