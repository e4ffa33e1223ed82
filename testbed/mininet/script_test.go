package mininet

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestScriptCompiles byte-compiles skyvisor_clouds.py (syntax check).
func TestScriptCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("skipping: python3 not installed")
	}
	out, err := exec.Command(py, "-c", "import ast,sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])", "skyvisor_clouds.py").CombinedOutput()
	if err != nil {
		t.Fatalf("skyvisor_clouds.py does not parse: %v\n%s", err, out)
	}
	if _, err := filepath.Abs("skyvisor_clouds.py"); err != nil {
		t.Fatal(err)
	}
}
