package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/skyvisor/skyvisor/hypervisor/api"
	"github.com/skyvisor/skyvisor/hypervisor/api/apitest"
)

// Serve a Service and talk to it with the client: apply a tenant, read its
// hosts' fabric MACs, and see a validation error with its JSON paths.
func Example() {
	core := apitest.New() // the hypervisor core in production
	srv := httptest.NewServer(api.NewHandler(core, api.Options{Token: "s3cret"}))
	defer srv.Close()

	c, err := api.NewClient(srv.URL, "s3cret", nil)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	res, err := c.Apply(ctx, []byte(`{"tenant": "acme", "switches": [{"name": "s1"}],
		"hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24", "switch": "s1", "port": 1, "cloud": "aws"}]}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(res.Tenants[0].Tenant, res.Tenants[0].TenantID)

	m, err := c.Mapping(ctx, "acme")
	if err != nil {
		panic(err)
	}
	fmt.Println(m.Hosts[0].Name, m.Hosts[0].FabricMAC, m.Hosts[0].Binding)

	_, err = c.Apply(ctx, []byte(`{"tenant": "beta", "switches": [{"name": "s1"}],
		"hosts": [{"name": "h1", "mac": "00:00:00:00:00:01", "ip": "10.0.0.1/24", "switch": "s2", "port": 1, "cloud": "mars"}]}`))
	var apiErr *api.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.ErrorResponse.Error)
		for _, d := range apiErr.Details {
			fmt.Println(d.Path)
		}
	}
	// Output:
	// acme 512(02:00)
	// h1 02:00:00:00:00:01 bound
	// 400 invalid topology: 2 errors
	// $.hosts[0].cloud
	// $.hosts[0].switch
}
