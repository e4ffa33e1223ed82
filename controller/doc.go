// Package controller is Skyvisor's OpenFlow 1.3 session layer and app
// API (OpenFlow Switch Specification 1.3.5). Session lifecycle is
// documented in detail once implemented.
package controller
