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
// sites, vms, mode; VMs is the total; times are medians in ms): tunnel
// creation (Skyvisor start -> every tunnel usable), the controller's apply
// and the reachability that make up state population, the setup time
// (tunnel creation + state population), the flow entries the apply added,
// the OVSDB transactions, and the lab's own bring-up for scale.
func MarkdownTable(meds []Median) string {
	var b strings.Builder
	b.WriteString("| sites | VMs | mode | tunnels | tunnel creation | controller (apply) | reachability | state population | setup time | flow entries | OVSDB txns | lab up | runs | load1 |\n")
	b.WriteString("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, m := range meds {
		fmt.Fprintf(&b, "| %d | %d | %s | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %g | %g | %.0f | %d | %.1f |\n",
			m.Sites, m.Sites*m.VMs, m.Mode, m.Tunnels, m.TunnelCreationMS, m.ControllerMS, m.ReachabilityMS, m.PopulationMS,
			m.SetupMS, m.FlowAdds, m.OVSDBTxns, m.LabUpMS, m.Runs, m.Load1)
	}
	return b.String()
}

// series is one line of a panel.
type series struct {
	name   string
	xys    plotter.XYs
	c      color.Color
	glyph  draw.GlyphDrawer
	dashes []vg.Length
}

// Plot draws the medians as a PNG (1200x500 px) in the layout of the
// paper's Figure 2: left panel MST, right panel full mesh; in each, time
// (ms) against the number of sites for the setup time, its two phases
// (tunnel creation, state population) and the controller's part of state
// population, with the least-squares linear and quadratic fits of the
// setup time in N (R2 in the legend). Both panels share the y range.
// caption, if any, is appended to the panel titles in parentheses (keep it
// short, e.g. "median of 3 runs").
func Plot(w io.Writer, meds []Median, caption string) error {
	modes := []struct{ mode, title string }{{ModeMST, "MST of tunnels"}, {ModeMesh, "Full mesh of tunnels"}}
	ymax := 0.0
	for _, m := range meds {
		ymax = math.Max(ymax, m.SetupMS)
	}
	an, _ := Analyze(meds)
	row := make([]*plot.Plot, len(modes))
	for k, md := range modes {
		p := plot.New()
		p.Title.Text = md.title
		if caption != "" {
			p.Title.Text += " (" + caption + ")"
		}
		p.X.Label.Text = "sites (clouds)"
		p.Y.Label.Text = "time (ms)"
		p.Y.Min, p.Y.Max = 0, ymax*1.3
		p.Add(plotter.NewGrid())
		p.Y.Tick.Marker = msTicks{}
		var xt []plot.Tick
		for _, m := range meds {
			if m.Mode == md.mode {
				xt = append(xt, plot.Tick{Value: float64(m.Sites), Label: fmt.Sprint(m.Sites)})
			}
		}
		p.X.Tick.Marker = plot.ConstantTicks(xt)
		var tot, tun, pop, ctl plotter.XYs
		for _, m := range meds {
			if m.Mode != md.mode {
				continue
			}
			x := float64(m.Sites)
			tot = append(tot, plotter.XY{X: x, Y: m.SetupMS})
			tun = append(tun, plotter.XY{X: x, Y: m.TunnelCreationMS})
			pop = append(pop, plotter.XY{X: x, Y: m.PopulationMS})
			ctl = append(ctl, plotter.XY{X: x, Y: m.ControllerMS})
		}
		dashed := []vg.Length{vg.Points(4), vg.Points(3)}
		ss := []series{
			{"setup time (tunnels + state)", tot, color.RGBA{R: 30, G: 30, B: 30, A: 255}, draw.CircleGlyph{}, nil},
			{"tunnel creation", tun, color.RGBA{R: 214, G: 39, B: 40, A: 255}, draw.SquareGlyph{}, nil},
			{"state population (submit -> all ping)", pop, color.RGBA{R: 31, G: 119, B: 180, A: 255}, draw.TriangleGlyph{}, nil},
			{"  of which controller (REST apply)", ctl, color.RGBA{R: 255, G: 127, B: 14, A: 255}, draw.PlusGlyph{}, dashed},
		}
		for _, s := range ss {
			if len(s.xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(s.xys)
			if err != nil {
				return fmt.Errorf("plot: %w", err)
			}
			l.Color, pts.Color, pts.Shape, l.Dashes = s.c, s.c, s.glyph, s.dashes
			p.Add(l, pts)
			p.Legend.Add(s.name, l, pts)
		}
		for _, g := range an.Modes {
			if g.Mode != md.mode || g.Setup.Growth == "" {
				continue
			}
			for _, f := range []struct {
				name string
				fit  Fit
				c    color.Color
			}{
				{"linear fit of setup time", g.SetupLinear, color.RGBA{R: 120, G: 120, B: 120, A: 255}},
				{"quadratic fit of setup time", g.SetupQuadratic, color.RGBA{R: 148, G: 103, B: 189, A: 255}},
			} {
				fit := f.fit
				fn := plotter.NewFunction(fit.At)
				fn.XMin, fn.XMax, fn.Samples = float64(g.MinSites), float64(g.MaxSites), 100
				fn.Color, fn.Dashes = f.c, []vg.Length{vg.Points(1), vg.Points(2)}
				fn.Width = vg.Points(1.2)
				p.Add(fn)
				p.Legend.Add(fmt.Sprintf("%s (R2 %.3f)", f.name, fit.R2), fn)
			}
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
