// Package api is Skyvisor's northbound REST API: the JSON wire types, the
// HTTP server (NewHandler) that serves them on top of a Service implemented
// by the hypervisor core, and a Go client (NewClient) used by cmd/skyctl.
//
// All routes live under /v1 and speak JSON only (request and response bodies
// are application/json; UTF-8). The routes, their bodies and their errors are
// described in docs/openapi.yaml (OpenAPI 3.1) and, with curl examples, in
// docs/api.md; a test keeps the route table and openapi.yaml in step.
//
// Authentication: every write (PUT, POST, DELETE) needs the header
// "Authorization: Bearer <token>" whose token equals Options.Token (compared
// in constant time). With no token configured the API is read-only: writes
// get 403 "no API token configured". GET /v1/health never needs a token;
// other reads need it only when Options.AuthReads is set.
//
// Errors are always a JSON ErrorResponse:
//
//	{"error": "invalid topology", "details": [{"path": "$.hosts[1].cloud", "message": "unknown cloud \"gcp\""}]}
//
// with status 400 (malformed JSON, unknown fields, validation: every error is
// listed with its JSON path), 401/403 (auth), 404 (no such tenant or route),
// 405 (wrong method; Allow header set), 409 (conflict, e.g. tenant IDs
// exhausted), 413 (body over Options.MaxBodyBytes), 415 (not JSON), 500
// (internal; details only in the server log, keyed by request_id) or 503.
package api
