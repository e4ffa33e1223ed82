package api_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/skyvisor/skyvisor/hypervisor/api"
)

const openAPIPath = "../../docs/openapi.yaml"

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	return doc
}

func child(t *testing.T, m any, keys ...string) map[string]any {
	t.Helper()
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			t.Fatalf("openapi: %s is not a map", k)
		}
		m = mm[k]
	}
	out, ok := m.(map[string]any)
	if !ok {
		t.Fatalf("openapi: %s missing or not a map", strings.Join(keys, "."))
	}
	return out
}

// TestOpenAPIMatchesRoutes keeps docs/openapi.yaml and the mux in step: every
// route served is documented and every documented operation is served, with
// the security and error responses its kind needs.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	if doc["openapi"] != "3.1.0" {
		t.Errorf("openapi version %v, want 3.1.0", doc["openapi"])
	}
	paths := child(t, doc, "paths")
	served := map[string]bool{}
	for _, r := range api.Routes() {
		method, path, _ := strings.Cut(r, " ")
		served[strings.ToLower(method)+" "+path] = true
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("route %s: path %s not in openapi.yaml", r, path)
			continue
		}
		op, ok := item[strings.ToLower(method)].(map[string]any)
		if !ok {
			t.Errorf("route %s: no %s operation in openapi.yaml", r, strings.ToLower(method))
			continue
		}
		responses := child(t, op, "responses")
		want := []string{"200"}
		switch method {
		case "PUT", "POST":
			want = []string{"200", "400", "401", "403", "413", "415", "500"}
		case "DELETE":
			want = []string{"204", "401", "403", "404", "500"}
		}
		if strings.Contains(path, "{name}") && method != "PUT" {
			want = append(want, "404")
		}
		for _, code := range want {
			if _, ok := responses["202"]; ok && code == "200" && method == "POST" {
				continue // accepted for background work (POST /v1/migrations)
			}
			if _, ok := responses[code]; !ok {
				t.Errorf("route %s: response %s not documented", r, code)
			}
		}
		sec, _ := op["security"].([]any)
		hasBearer := strings.Contains(fmt.Sprint(sec), "bearerAuth")
		write := method == "PUT" || method == "POST" || method == "DELETE"
		if write && (len(sec) != 1 || !hasBearer) {
			t.Errorf("route %s: a write must require bearerAuth, security is %v", r, sec)
		}
		if path == "/v1/health" && len(sec) != 0 {
			t.Errorf("route %s: health must have security: [], got %v", r, sec)
		}
		if (write || path == "/v1/health") == false && !hasBearer {
			t.Errorf("route %s: reads must list bearerAuth as optional", r)
		}
		// Path parameters are declared.
		for _, p := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(path, -1) {
			params := fmt.Sprint(item["parameters"])
			declared := p[1] == "name" && strings.Contains(params, "TenantName") ||
				p[1] == "id" && strings.Contains(params, "ID") // e.g. MigrationID
			if !declared {
				t.Errorf("route %s: path parameter %s not declared", r, p[1])
			}
		}
	}
	for path, item := range paths {
		for method := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			if !served[method+" "+path] {
				t.Errorf("openapi.yaml documents %s %s, which the handler does not serve", strings.ToUpper(method), path)
			}
		}
	}
}

// TestOpenAPIRefsResolve checks every $ref: local ones name a component that
// exists, file ones name a file that exists next to openapi.yaml.
func TestOpenAPIRefsResolve(t *testing.T) {
	doc := loadOpenAPI(t)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if k == "$ref" {
					ref := x.(string)
					if local, ok := strings.CutPrefix(ref, "#/"); ok {
						var node any = doc
						for _, part := range strings.Split(local, "/") {
							m, _ := node.(map[string]any)
							node = m[part]
						}
						if node == nil {
							t.Errorf("$ref %s does not resolve", ref)
						}
					} else if _, err := os.Stat(filepath.Join(filepath.Dir(openAPIPath), ref)); err != nil {
						t.Errorf("$ref %s: %v", ref, err)
					}
					continue
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
}

// TestOpenAPISchemasMatchTypes checks that every documented schema has
// exactly the JSON fields of the Go type it describes.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	schemas := child(t, doc, "components", "schemas")
	for name, v := range map[string]any{
		"ErrorResponse": api.ErrorResponse{}, "ErrorDetail": api.ErrorDetail{},
		"TenantStatus": api.TenantStatus{}, "TenantList": api.TenantList{}, "ApplyResult": api.ApplyResult{},
		"TenantDetail": api.TenantDetail{}, "Mapping": api.Mapping{}, "SwitchMapping": api.SwitchMapping{},
		"PortMapping": api.PortMapping{}, "LinkMapping": api.LinkMapping{}, "Hop": api.Hop{},
		"HostMapping": api.HostMapping{}, "PhysicalTopology": api.PhysicalTopology{}, "Site": api.Site{},
		"PhysicalSwitch": api.PhysicalSwitch{}, "PhysicalLink": api.PhysicalLink{},
		"GatewayTunnel": api.GatewayTunnel{}, "TunnelBFD": api.TunnelBFD{}, "TunnelBFDEnd": api.TunnelBFDEnd{},
		"Health": api.Health{}, "HealthCheck": api.HealthCheck{},
		"MigrationRequest": api.MigrationRequest{}, "Migration": api.Migration{}, "MigrationBridge": api.MigrationBridge{},
		"MigrationHost": api.MigrationHost{}, "MigrationStep": api.MigrationStep{}, "MigrationEvent": api.MigrationEvent{},
	} {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		got := schemaProps(t, schemas, s)
		want := jsonFields(reflect.TypeOf(v))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("schema %s has properties %v, Go type %T has JSON fields %v", name, got, v, want)
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if !slices.Contains(want, r.(string)) {
					t.Errorf("schema %s requires unknown field %v", name, r)
				}
			}
		}
	}
}

// schemaProps returns the sorted property names of s, merging allOf parts.
func schemaProps(t *testing.T, schemas map[string]any, s map[string]any) []string {
	var out []string
	if props, ok := s["properties"].(map[string]any); ok {
		for k := range props {
			out = append(out, k)
		}
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, part := range all {
			p := part.(map[string]any)
			if ref, ok := p["$ref"].(string); ok {
				p = schemas[strings.TrimPrefix(ref, "#/components/schemas/")].(map[string]any)
			}
			out = append(out, schemaProps(t, schemas, p)...)
		}
	}
	sort.Strings(out)
	return out
}

// jsonFields returns the sorted JSON names of typ's fields, flattening
// embedded structs as encoding/json does.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" {
			out = append(out, jsonFields(f.Type)...)
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
