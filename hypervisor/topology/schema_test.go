package topology

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// TestSchemaMatchesTypes keeps docs/topology.schema.json in step with the Go
// types: every object's properties are exactly the struct's JSON fields, and
// the numeric limits are the package's constants.
func TestSchemaMatchesTypes(t *testing.T) {
	data, err := os.ReadFile("../../docs/topology.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Schema string `json:"$schema"`
		Defs   map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
			Minimum    *float64                   `json:"minimum"`
			Maximum    *float64                   `json:"maximum"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &schema); err != nil {
		t.Fatal(err)
	}
	if schema.Schema != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %q", schema.Schema)
	}
	for def, typ := range map[string]reflect.Type{
		"topology": reflect.TypeOf(Topology{}),
		"switch":   reflect.TypeOf(Switch{}),
		"link":     reflect.TypeOf(Link{}),
		"endpoint": reflect.TypeOf(Endpoint{}),
		"host":     reflect.TypeOf(Host{}),
	} {
		var fields []string
		for i := 0; i < typ.NumField(); i++ {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			fields = append(fields, name)
		}
		var props []string
		for p := range schema.Defs[def].Properties {
			props = append(props, p)
		}
		slices.Sort(fields)
		slices.Sort(props)
		if !slices.Equal(fields, props) {
			t.Errorf("schema $defs.%s properties %v, Go fields %v", def, props, fields)
		}
	}
	port := schema.Defs["port"]
	if port.Minimum == nil || *port.Minimum != float64(MinPort) || port.Maximum == nil || *port.Maximum != float64(MaxPort) {
		t.Errorf("schema port range wrong")
	}
	var limits struct {
		Defs struct {
			Topology struct {
				Properties map[string]struct {
					MaxItems int `json:"maxItems"`
				} `json:"properties"`
			} `json:"topology"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(data, &limits); err != nil {
		t.Fatal(err)
	}
	p := limits.Defs.Topology.Properties
	if p["switches"].MaxItems != MaxSwitches || p["links"].MaxItems != MaxLinks || p["hosts"].MaxItems != MaxHosts || p["apps"].MaxItems != MaxApps {
		t.Errorf("schema maxItems differ from the Max* constants: %+v", p)
	}
}

// TestDocBadTopologyOutput keeps the error listing in docs/topology.md equal
// to what Load reports for examples/bad-topology.json.
func TestDocBadTopologyOutput(t *testing.T) {
	doc, err := os.ReadFile("../../docs/topology.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- bad-topology-output -->\n```\n")
	if !ok {
		t.Fatal("marker not found in docs/topology.md")
	}
	block, _, _ = strings.Cut(block, "\n```")
	data, err := os.ReadFile("../../examples/bad-topology.json")
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := Load(data, testInfra())
	if lerr == nil || lerr.Error() != block {
		t.Errorf("docs/topology.md shows:\n%s\nLoad reports:\n%v", block, lerr)
	}
}
