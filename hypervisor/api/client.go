package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// maxResponseBytes bounds what the client reads from one response (a large
// physical topology is a few MiB).
const maxResponseBytes = 64 << 20

// Client calls the REST API. It is safe for concurrent use.
type Client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string
	hc    *http.Client
}

// NewClient returns a client for the API at baseURL ("http://127.0.0.1:8080",
// optionally with a path prefix). token is sent as a bearer token when not
// empty. hc nil means http.DefaultClient; set its Timeout for a deadline
// beyond the per-call ctx.
func NewClient(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: must not have a query or fragment", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(u.String(), "/"), token: token, hc: hc}, nil
}

// Error is a non-2xx answer from the API. errors.Is matches it against
// ErrNotFound (404), ErrConflict (409), ErrInvalid (400, 413, 415),
// ErrUnauthorized (401), ErrForbidden (403) and ErrUnavailable (503).
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	ErrorResponse
	// raw is the response body, kept for answers whose body is not an
	// ErrorResponse (a 503 from /v1/health carries a Health).
	raw []byte
}

// Error returns "<status>: <message>" followed by every detail's
// "<path>: <message>" on its own line.
func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", e.StatusCode, http.StatusText(e.StatusCode), e.ErrorResponse.Error)
	for _, d := range e.Details {
		fmt.Fprintf(&b, "\n  %s: %s", d.Path, d.Message)
	}
	return b.String()
}

// Is maps the status code to the package's sentinel errors.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrInvalid:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge ||
			e.StatusCode == http.StatusUnsupportedMediaType
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable
	}
	return false
}

// ApplyTenant creates or replaces one tenant (PUT /v1/tenants/{name}).
func (c *Client) ApplyTenant(ctx context.Context, t *topology.Topology) (TenantStatus, error) {
	body, err := json.Marshal(t)
	if err != nil {
		return TenantStatus{}, fmt.Errorf("encode topology: %w", err)
	}
	var st TenantStatus
	err = c.Do(ctx, http.MethodPut, "/v1/tenants/"+url.PathEscape(t.Tenant), body, &st)
	return st, err
}

// Apply sends a raw document (one topology or {"tenants": [...]}) to
// POST /v1/tenants, applied all or nothing; the server parses and validates
// it, so validation errors come back as *Error with Details.
func (c *Client) Apply(ctx context.Context, doc []byte) (ApplyResult, error) {
	var res ApplyResult
	err := c.Do(ctx, http.MethodPost, "/v1/tenants", doc, &res)
	return res, err
}

// DeleteTenant deletes a tenant (DELETE /v1/tenants/{name}).
func (c *Client) DeleteTenant(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/v1/tenants/"+url.PathEscape(name), nil, nil)
}

// Tenants lists every tenant (GET /v1/tenants), sorted by name.
func (c *Client) Tenants(ctx context.Context) ([]TenantStatus, error) {
	var l TenantList
	err := c.Do(ctx, http.MethodGet, "/v1/tenants", nil, &l)
	return l.Tenants, err
}

// Tenant returns one tenant (GET /v1/tenants/{name}).
func (c *Client) Tenant(ctx context.Context, name string) (TenantDetail, error) {
	var d TenantDetail
	err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(name), nil, &d)
	return d, err
}

// Mapping returns one tenant's mapping (GET /v1/tenants/{name}/mapping).
func (c *Client) Mapping(ctx context.Context, name string) (Mapping, error) {
	var m Mapping
	err := c.Do(ctx, http.MethodGet, "/v1/tenants/"+url.PathEscape(name)+"/mapping", nil, &m)
	return m, err
}

// PhysicalTopology returns the physical view (GET /v1/topology/physical).
func (c *Client) PhysicalTopology(ctx context.Context) (PhysicalTopology, error) {
	var p PhysicalTopology
	err := c.Do(ctx, http.MethodGet, "/v1/topology/physical", nil, &p)
	return p, err
}

// Health returns the daemon's health (GET /v1/health). A 503 answer with a
// Health body is returned as that Health (Status "unavailable") and a nil
// error: the body is the answer.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.Do(ctx, http.MethodGet, "/v1/health", nil, &h)
	var ae *Error
	if errors.As(err, &ae) && ae.StatusCode == http.StatusServiceUnavailable && ae.raw != nil {
		if json.Unmarshal(ae.raw, &h) == nil && h.Status != "" {
			return h, nil
		}
	}
	return h, err
}

// Do sends one request to path (relative to the base URL, starting with
// "/v1/") with body as JSON (nil for none) and decodes a 2xx answer into out
// (nil to discard; a *json.RawMessage receives the body verbatim). A non-2xx
// answer is an *Error; transport failures wrap the *url.Error (which names
// the method and URL).
func (c *Client) Do(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// A *url.Error: it names the method and URL.
		return fmt.Errorf("cannot reach the API: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: reading response: %w", method, path, err)
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return newError(resp, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", method, path, err)
	}
	return nil
}

// newError builds an *Error from a non-2xx response, tolerating bodies that
// are not ours (a proxy's HTML page): their first line becomes the message.
func newError(resp *http.Response, data []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, raw: data}
	if json.Unmarshal(data, &e.ErrorResponse) != nil || e.ErrorResponse.Error == "" {
		msg := strings.TrimSpace(string(data))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		e.ErrorResponse = ErrorResponse{Error: msg, RequestID: resp.Header.Get("X-Request-Id")}
	}
	return e
}
