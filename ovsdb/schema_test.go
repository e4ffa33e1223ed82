package ovsdb

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

func readSchema(t *testing.T, path string) libovsdb.DatabaseSchema {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s libovsdb.DatabaseSchema
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

// The generated models must come from the committed schema: run
// `make generate` after changing vswitch.ovsschema.
func TestModelsMatchCommittedSchema(t *testing.T) {
	committed := readSchema(t, "vswitch.ovsschema")
	if !reflect.DeepEqual(committed, vswitch.Schema()) {
		t.Fatal("ovsdb/vswitch is stale: regenerate with `make generate`")
	}
	if _, err := vswitch.FullDatabaseModel(); err != nil {
		t.Fatal(err)
	}
}

// The installed Open vSwitch should serve the schema the models were made
// from; a different version still works if compatible (libovsdb checks at
// Dial) but deserves a look.
func TestCommittedSchemaMatchesInstalledOVS(t *testing.T) {
	const installed = "/usr/share/openvswitch/vswitch.ovsschema"
	if _, err := os.Stat(installed); err != nil {
		t.Skipf("%s not installed", installed)
	}
	got, want := readSchema(t, installed), readSchema(t, "vswitch.ovsschema")
	if got.Version != want.Version {
		t.Fatalf("installed OVS schema version %s, committed %s: copy it and run `make generate`", got.Version, want.Version)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatal("installed OVS schema differs from the committed one with the same version")
	}
}
