package setuptime

import (
	"bytes"
	"image/png"
	"strings"
	"testing"
)

func TestMarkdownTable(t *testing.T) {
	tbl := MarkdownTable(Aggregate(sample()))
	lines := strings.Split(strings.TrimSpace(tbl), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "| sites |") {
		t.Fatalf("table:\n%s", tbl)
	}
	if lines[2] != "| 2 | 2 | mst | 1 | 120 | 10 | 20 | 30 | 140 | 40 | 2 | 300 | 3 | 1.5 |" {
		t.Fatalf("row %q", lines[2])
	}
}

func TestPlotWritesPNG(t *testing.T) {
	var b bytes.Buffer
	if err := Plot(&b, synthetic(10, 50), "skyexp setuptime"); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() < 800 || r.Dy() < 300 {
		t.Fatalf("image %v", r)
	}
}

func TestMSTicks(t *testing.T) {
	var major []float64
	for _, tk := range (msTicks{}).Ticks(0, 2700) {
		if tk.Label != "" {
			major = append(major, tk.Value)
		}
	}
	if len(major) != 6 || major[0] != 0 || major[1] != 500 || major[5] != 2500 {
		t.Fatalf("major ticks %v", major)
	}
	if tk := (msTicks{}).Ticks(5, 5); len(tk) != 1 || tk[0].Label != "5" {
		t.Fatalf("degenerate range: %v", tk)
	}
}
