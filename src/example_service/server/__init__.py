"""The request path: granian's embedding, the wiring that builds the app, the RSGI app and its
route table, the handlers, the lifecycle."""
