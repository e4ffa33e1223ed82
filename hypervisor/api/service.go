package api

import (
	"context"
	"errors"
	"strings"

	"github.com/skyvisor/skyvisor/hypervisor/topology"
)

// Service is what the REST API needs from the hypervisor core. The core
// implements it; NewHandler serves it. Every method must be safe for
// concurrent use and must honour ctx cancellation.
//
// Errors map to HTTP statuses (anything else is a 500 whose text is logged,
// never sent):
//   - *topology.ValidationError (possibly wrapped) -> 400 listing every
//     FieldError as a detail with its JSON path;
//   - ErrInvalid -> 400, ErrNotFound -> 404, ErrConflict or
//     addr.ErrExhausted -> 409, ErrUnavailable -> 503 (each wrapped with
//     context, e.g.
//     fmt.Errorf("tenant %q: %w", name, api.ErrNotFound); the full text is
//     sent to the client).
type Service interface {
	// Infra returns the infrastructure topologies are validated against
	// (known clouds and their VMs; topology.Infra{} with nil Clouds when
	// unknown, which checks cloud names for syntax only). The handler
	// runs topology.Load(body, Infra) on every PUT and POST, so every
	// syntax, shape and semantic error of a request comes back in one 400
	// before the Apply methods are called.
	Infra(ctx context.Context) (topology.Infra, error)

	// ApplyTenant creates the tenant t.Tenant or replaces its topology. t
	// has passed topology.Load against Infra; the core re-validates what
	// may have changed since (JSON paths rooted at the topology:
	// "$.hosts[1].cloud"), allocates a tenant ID on create (ErrConflict
	// if none is left), stores it and maps it. Nothing changes when it
	// returns an error.
	ApplyTenant(ctx context.Context, t *topology.Topology) (TenantStatus, error)

	// ApplyTenants applies several tenants (distinct names, each passed
	// topology.Load) all or nothing: nothing changes unless all are valid
	// and all tenant IDs can be allocated. Validation errors name the
	// tenant by its index in the request document,
	// "$.tenants[2].hosts[0].mac" (see PrefixPaths). Statuses come back in
	// the order of ts.
	ApplyTenants(ctx context.Context, ts []*topology.Topology) ([]TenantStatus, error)

	// DeleteTenant removes a tenant, its flows and its tenant ID
	// allocation. ErrNotFound if there is no such tenant.
	DeleteTenant(ctx context.Context, name string) error

	// Tenants lists every tenant, sorted by name (empty, not nil, if none).
	Tenants(ctx context.Context) ([]TenantStatus, error)

	// Tenant returns one tenant's status, stored topology and mapping.
	// ErrNotFound if there is no such tenant.
	Tenant(ctx context.Context, name string) (TenantDetail, error)

	// Mapping returns how one tenant's virtual switches, ports, links and
	// hosts map onto physical switches, ports and tunnels. ErrNotFound if
	// there is no such tenant.
	Mapping(ctx context.Context, name string) (Mapping, error)

	// PhysicalTopology returns the sites, switches, LLDP links and gateway
	// tunnels the hypervisor knows of.
	PhysicalTopology(ctx context.Context) (PhysicalTopology, error)

	// Health reports the daemon's health; it must answer quickly (it backs
	// liveness probes) and never fail: problems are reported in Checks.
	Health(ctx context.Context) Health
}

// Sentinel errors a Service wraps to choose the HTTP status, and that Client
// methods return (wrapped in *Error) for the same statuses, so
// errors.Is(err, api.ErrNotFound) works on both sides.
var (
	// ErrNotFound: no such tenant (404).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request conflicts with the current state, e.g. no
	// tenant ID left (409).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request is invalid in a way that is not tied to one
	// JSON path (400).
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the core cannot serve the request now, e.g. the
	// store is closed during shutdown (503).
	ErrUnavailable = errors.New("service unavailable")
	// ErrUnauthorized: missing or wrong bearer token (401); client side.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: the server refuses writes, e.g. no token configured
	// (403); client side.
	ErrForbidden = errors.New("forbidden")
)

// PrefixPaths re-roots the paths of a *topology.ValidationError found in err
// from "$" to root (e.g. "$.tenants[2]"), so a topology validated on its own
// can be reported inside a multi-tenant document. It returns a new
// *topology.ValidationError (err itself is not modified), or err unchanged
// if it holds none.
func PrefixPaths(err error, root string) error {
	var verr *topology.ValidationError
	if !errors.As(err, &verr) {
		return err
	}
	out := &topology.ValidationError{Errors: make([]topology.FieldError, len(verr.Errors))}
	for i, fe := range verr.Errors {
		if rest, ok := strings.CutPrefix(fe.Path, "$"); ok {
			fe.Path = root + rest
		}
		out.Errors[i] = fe
	}
	return out
}
