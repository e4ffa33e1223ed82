package migration

import (
	"encoding/csv"
	"fmt"
	"image/color"
	"io"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/skyvisor/skyvisor/hypervisor/migrate"
	"github.com/skyvisor/skyvisor/testbed/experiments/runinfo"
)

// Header returns the CSV header of WriteCSV: the point, the total, one
// column per step (migrate.Steps, "-" as "_"), the mean host move, the
// clone counts, the pings, the error, then the load average and the
// commit the migration was measured at.
func Header() []string {
	h := []string{"delay_ms", "flows", "hosts", "rep", "direction", "total_ms"}
	for _, s := range migrate.Steps() {
		h = append(h, stepColumn(s))
	}
	return append(h, "host_move_ms", "cloned", "frozen", "ping_sent", "ping_lost", "error", "load1", "commit")
}

func stepColumn(s migrate.Step) string {
	b := []byte(string(s))
	for i := range b {
		if b[i] == '-' {
			b[i] = '_'
		}
	}
	return string(b) + "_ms"
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// WriteCSV writes rows with Header.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(Header()); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{strconv.Itoa(r.DelayMS), strconv.Itoa(r.Flows), strconv.Itoa(r.Hosts), strconv.Itoa(r.Rep), r.Direction, f1(r.TotalMS)}
		for i := range migrate.Steps() {
			v := 0.0
			if i < len(r.StepMS) {
				v = r.StepMS[i]
			}
			rec = append(rec, f1(v))
		}
		rec = append(rec, f1(r.HostMoveMS), strconv.Itoa(r.Cloned), strconv.Itoa(r.Frozen), strconv.Itoa(r.PingSent), strconv.Itoa(r.PingLost), r.Err,
			strconv.FormatFloat(r.Load1, 'f', 2, 64), r.Commit)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Summary is the median of the rows of one (delay, flows, hosts) point
// over both directions and every rep.
type Summary struct {
	DelayMS, Flows, Hosts int
	N                     int
	TotalMS, MoveMS       float64 // medians: whole migration, move step
	CloneMS, FreezeMS     float64 // medians of the clone and freeze steps
	LostPerHost           float64 // median ping loss of the moving host
	Load1                 float64 // median load average at the migrations' start
	Commit                string  // the rows' commit (runinfo.JoinCommits)
}

// Summarize returns one Summary per point, in (delay, flows, hosts) order;
// failed rows are left out.
func Summarize(rows []Row) []Summary {
	type key struct{ d, f, h int }
	groups := map[key][]Row{}
	var keys []key
	for _, r := range rows {
		if r.Err != "" {
			continue
		}
		k := key{r.DelayMS, r.Flows, r.Hosts}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], r)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.d != b.d {
			return a.d - b.d
		}
		if a.f != b.f {
			return a.f - b.f
		}
		return a.h - b.h
	})
	idx := func(s migrate.Step) int { return slices.Index(migrate.Steps(), s) }
	var out []Summary
	for _, k := range keys {
		g := groups[k]
		med := func(f func(Row) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			return median(v)
		}
		step := func(s migrate.Step) func(Row) float64 {
			return func(r Row) float64 {
				if i := idx(s); i < len(r.StepMS) {
					return r.StepMS[i]
				}
				return 0
			}
		}
		commits := make([]string, len(g))
		for i, r := range g {
			commits[i] = r.Commit
		}
		out = append(out, Summary{DelayMS: k.d, Flows: k.f, Hosts: k.h, N: len(g),
			Load1: med(func(r Row) float64 { return r.Load1 }), Commit: runinfo.JoinCommits(commits),
			TotalMS: med(func(r Row) float64 { return r.TotalMS }), MoveMS: med(step(migrate.StepMove)),
			CloneMS: med(step(migrate.StepClone)), FreezeMS: med(step(migrate.StepFreeze)),
			LostPerHost: med(func(r Row) float64 { return float64(r.PingLost) })})
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// WriteSummaryCSV writes the summaries.
func WriteSummaryCSV(w io.Writer, ss []Summary) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"delay_ms", "flows", "hosts", "n", "total_ms", "move_ms", "clone_ms", "freeze_ms", "ping_lost",
		"load1", "commit"}); err != nil {
		return err
	}
	for _, s := range ss {
		if err := cw.Write([]string{strconv.Itoa(s.DelayMS), strconv.Itoa(s.Flows), strconv.Itoa(s.Hosts), strconv.Itoa(s.N),
			f1(s.TotalMS), f1(s.MoveMS), f1(s.CloneMS), f1(s.FreezeMS), f1(s.LostPerHost),
			strconv.FormatFloat(s.Load1, 'f', 2, 64), s.Commit}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Table writes the summaries as a text table.
func Table(w io.Writer, ss []Summary) {
	fmt.Fprintf(w, "%8s %6s %5s %3s %9s %9s %9s %9s %9s\n", "delay_ms", "flows", "hosts", "n", "total_ms", "move_ms", "clone_ms", "freeze_ms", "lost")
	for _, s := range ss {
		fmt.Fprintf(w, "%8d %6d %5d %3d %9.1f %9.1f %9.1f %9.1f %9.1f\n", s.DelayMS, s.Flows, s.Hosts, s.N, s.TotalMS, s.MoveMS, s.CloneMS, s.FreezeMS, s.LostPerHost)
	}
}

// Plot draws two panels as a PNG (about 1200x500 px): the median total
// migration time against the number of flows, one line per (delay, hosts),
// and against the number of hosts, one line per (delay, flows).
func Plot(w io.Writer, ss []Summary, caption string) error {
	palette := []color.Color{
		color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}, color.RGBA{44, 160, 44, 255},
		color.RGBA{148, 103, 189, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{140, 86, 75, 255},
		color.RGBA{227, 119, 194, 255}, color.RGBA{127, 127, 127, 255}, color.RGBA{188, 189, 34, 255},
	}
	dashes := [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}
	panel := func(title, xlabel string, x func(Summary) int, series func(Summary) (string, int, int)) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.X.Label.Text = xlabel
		p.Y.Label.Text = "migration time, median (ms)"
		p.Add(plotter.NewGrid())
		lines := map[string]plotter.XYs{}
		style := map[string][2]int{}
		var names []string
		for _, s := range ss {
			name, ci, di := series(s)
			if _, ok := lines[name]; !ok {
				names = append(names, name)
				style[name] = [2]int{ci, di}
			}
			lines[name] = append(lines[name], plotter.XY{X: float64(x(s)), Y: s.TotalMS})
		}
		for _, n := range names {
			pts := lines[n]
			slices.SortFunc(pts, func(a, b plotter.XY) int {
				switch {
				case a.X < b.X:
					return -1
				case a.X > b.X:
					return 1
				}
				return 0
			})
			l, sc, err := plotter.NewLinePoints(pts)
			if err != nil {
				return nil, err
			}
			st := style[n]
			l.Color, sc.Color = palette[st[0]%len(palette)], palette[st[0]%len(palette)]
			l.Dashes = dashes[st[1]%len(dashes)]
			p.Add(l, sc)
			p.Legend.Add(n, l, sc)
		}
		p.Legend.Top, p.Legend.Left = true, true
		p.Y.Min = 0
		return p, nil
	}
	delays, flows, hosts := distinct(ss, func(s Summary) int { return s.DelayMS }), distinct(ss, func(s Summary) int { return s.Flows }),
		distinct(ss, func(s Summary) int { return s.Hosts })
	title := "Live migration time"
	if caption != "" {
		title += " (" + caption + ")"
	}
	p1, err := panel(title+" vs flows", "tenant flow entries on the migrating bridge", func(s Summary) int { return s.Flows },
		func(s Summary) (string, int, int) {
			return fmt.Sprintf("WAN %d ms, %d hosts", s.DelayMS, s.Hosts), slices.Index(hosts, s.Hosts), slices.Index(delays, s.DelayMS)
		})
	if err != nil {
		return err
	}
	p2, err := panel("vs hosts", "hosts on the migrating bridge", func(s Summary) int { return s.Hosts },
		func(s Summary) (string, int, int) {
			return fmt.Sprintf("WAN %d ms, %d flows", s.DelayMS, s.Flows), slices.Index(flows, s.Flows) + 3, slices.Index(delays, s.DelayMS)
		})
	if err != nil {
		return err
	}
	img := vgimg.New(vg.Points(900), vg.Points(380))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(10), PadY: vg.Points(10), PadTop: vg.Points(5), PadBottom: vg.Points(5), PadLeft: vg.Points(5), PadRight: vg.Points(5)}
	canvases := plot.Align([][]*plot.Plot{{p1, p2}}, tiles, dc)
	p1.Draw(canvases[0][0])
	p2.Draw(canvases[0][1])
	_, err = vgimg.PngCanvas{Canvas: img}.WriteTo(w)
	return err
}

func distinct(ss []Summary, f func(Summary) int) []int {
	var out []int
	for _, s := range ss {
		if !slices.Contains(out, f(s)) {
			out = append(out, f(s))
		}
	}
	slices.Sort(out)
	return out
}
