package setuptime

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// MarkdownTable formats the medians as a Markdown table (one row per
// sites, vms, mode; VMs is the total; times are medians in ms: lab up =
// t_lab_up, then the parts of the tunnel phase (connect, Apply, flows,
// pings), the tunnel phase t_usable - t_lab_up, and the setup time
// t_usable).
func MarkdownTable(meds []Median) string {
	var b strings.Builder
	b.WriteString("| sites | VMs | mode | tunnels | OVSDB txns | lab up | connect | Apply | flows | pings | tunnel phase | setup time | runs | load1 |\n")
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range meds {
		fmt.Fprintf(&b, "| %d | %d | %s | %d | %g | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %d | %.1f |\n",
			m.Sites, m.Sites*m.VMs, m.Mode, m.Tunnels, m.OVSDBTxns, m.LabUpMS, m.ConnectMS, m.ApplyMS, m.FlowPhaseMS, m.PingMS,
			m.TunnelsMS, m.UsableMS, m.Runs, m.Load1)
	}
	return b.String()
}

// Plot draws the medians as a PNG (1200x500 px) in the layout of the
// paper's Figure 2: left panel MST, right panel full mesh; in each, time
// (ms) against the number of sites for the setup time, lab up, the tunnel
// phase (lab up -> usable) and its provisioning part. Both panels share
// the y range. caption, if any, is appended to the panel titles in
// parentheses (keep it short, e.g. "median of 5 runs").
func Plot(w io.Writer, meds []Median, caption string) error {
	modes := []struct{ mode, title string }{{ModeMST, "MST of tunnels"}, {ModeMesh, "Full mesh of tunnels"}}
	ymax := 0.0
	for _, m := range meds {
		ymax = math.Max(ymax, m.UsableMS)
	}
	row := make([]*plot.Plot, len(modes))
	for k, md := range modes {
		p := plot.New()
		p.Title.Text = md.title
		if caption != "" {
			p.Title.Text += " (" + caption + ")"
		}
		p.X.Label.Text = "sites (clouds)"
		p.Y.Label.Text = "time (ms)"
		p.Y.Min, p.Y.Max = 0, ymax*1.05
		p.Add(plotter.NewGrid())
		p.Y.Tick.Marker = msTicks{}
		var lab, tun, tot, prov plotter.XYs
		for _, m := range meds {
			if m.Mode != md.mode {
				continue
			}
			x := float64(m.Sites)
			lab = append(lab, plotter.XY{X: x, Y: m.LabUpMS})
			tun = append(tun, plotter.XY{X: x, Y: m.TunnelsMS})
			tot = append(tot, plotter.XY{X: x, Y: m.UsableMS})
			prov = append(prov, plotter.XY{X: x, Y: m.ProvisionMS})
		}
		for i, s := range []struct {
			name string
			xys  plotter.XYs
			c    color.Color
		}{
			{"setup time (lab up -> tunnels usable)", tot, color.RGBA{R: 30, G: 30, B: 30, A: 255}},
			{"lab up (state population)", lab, color.RGBA{R: 31, G: 119, B: 180, A: 255}},
			{"tunnels (provision + flows -> usable)", tun, color.RGBA{R: 214, G: 39, B: 40, A: 255}},
			{"  of which provisioning (OVSDB)", prov, color.RGBA{R: 255, G: 127, B: 14, A: 255}},
		} {
			if len(s.xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(s.xys)
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			l.Color, pts.Color = s.c, s.c
			pts.Shape = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PlusGlyph{}}[i]
			if i == 3 {
				l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
			}
			p.Add(l, pts)
			p.Legend.Add(s.name, l, pts)
		}
		p.Legend.Top, p.Legend.Left = true, true
		row[k] = p
	}
	img := vgimg.New(vg.Points(900), vg.Points(375))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(modes), PadX: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2,
		PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align([][]*plot.Plot{row}, tiles, dc)
	for k := range row {
		row[k].Draw(canvases[0][k])
	}
	png := vgimg.PngCanvas{Canvas: img}
	if _, err := png.WriteTo(w); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// msTicks labels a millisecond axis with about six round major ticks
// (1, 2 or 5 times a power of ten apart), without decimals.
type msTicks struct{}

// Ticks implements plot.Ticker.
func (msTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: fmt.Sprintf("%.0f", lo)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, f := range []float64{1, 2, 5, 10} {
		if f*mag >= raw {
			step = f * mag
			break
		}
	}
	var out []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		out = append(out, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
		for k := 1; k < 5 && v+float64(k)*step/5 <= hi; k++ {
			out = append(out, plot.Tick{Value: v + float64(k)*step/5})
		}
	}
	return out
}
