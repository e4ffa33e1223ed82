package scale

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Row is one figure of a Result: the variant it belongs to (Result.Name),
// a metric name, its value and unit.
type Row struct {
	Variant string
	Metric  string
	Value   float64
	Unit    string
}

// csvHeader is the header line of WriteCSV.
var csvHeader = []string{"variant", "clouds", "vms_per_cloud", "tenants", "hosts_per_tenant", "switches_per_tenant", "metric", "value", "unit", "load1", "commit"}

// Rows lists every figure of r in a fixed order.
func (r *Result) Rows() []Row {
	var rows []Row
	add := func(metric string, v float64, unit string) {
		rows = append(rows, Row{Variant: r.Name, Metric: metric, Value: v, Unit: unit})
	}
	add("edge_bridges", float64(r.Config.Edges()), "bridges")
	add("gateways", float64(r.Config.Clouds), "bridges")
	add("bound_hosts", float64(r.Hosts), "hosts")
	add("generate_ms", r.GenerateMS, "ms")
	add("validate_ms", r.ValidateMS, "ms")
	add("store_tenants_ms", r.StoreTenantsMS, "ms")
	add("store_bindings_ms", r.StoreBindingsMS, "ms")
	add("load_ms", r.LoadMS, "ms")
	add("compile_ms", r.CompileMS, "ms")
	add("learning_ms", r.LearningMS, "ms")
	add("fingerprint_ms", r.FingerprintMS, "ms")
	add("diff_all_ms", r.DiffAllMS, "ms")
	add("entries_total", float64(r.Entries), "entries")
	for _, s := range []struct {
		name string
		st   Stats
	}{{"edge_entries", r.Edge}, {"gateway_entries", r.Gateway}, {"edge_tenant_table_entries", r.TenantEntries}} {
		add(s.name+"_min", float64(s.st.Min), "entries")
		add(s.name+"_median", float64(s.st.Median), "entries")
		add(s.name+"_max", float64(s.st.Max), "entries")
	}
	add("edge_flowstats_max_bytes", float64(r.MaxEdgeBytes), "bytes")
	add("gateway_flowstats_max_bytes", float64(r.MaxGatewayByte), "bytes")
	add("heap_base_bytes", float64(r.HeapBaseBytes), "bytes")
	add("heap_state_bytes", float64(r.HeapStateBytes), "bytes")
	add("heap_desired_bytes", float64(r.HeapDesiredBytes), "bytes")
	add("heap_fingerprint_bytes", float64(r.HeapFingerprintBytes), "bytes")
	add("store_file_bytes", float64(r.StoreFileBytes), "bytes")
	if a := r.Apply; a != nil {
		add("apply_hosts", float64(a.Hosts), "hosts")
		add("apply_clouds", float64(a.Clouds), "clouds")
		add("apply_runs", float64(a.Runs), "runs")
		add("apply_total_median_ms", a.TotalMS, "ms")
		add("apply_total_min_ms", a.MinMS, "ms")
		add("apply_total_max_ms", a.MaxMS, "ms")
		add("apply_total_cpu_median_ms", a.CPUMS, "ms")
		add("apply_validate_ms", a.ValidateMS, "ms")
		add("apply_store_ms", a.StoreMS, "ms")
		add("apply_load_ms", a.LoadMS, "ms")
		add("apply_compile_ms", a.CompileMS, "ms")
		add("apply_learning_ms", a.LearningMS, "ms")
		add("apply_fingerprint_ms", a.FingerprintMS, "ms")
		add("apply_diff_ms", a.DiffMS, "ms")
		add("apply_scoped_diff_ms", a.ScopedDiffMS, "ms")
		add("apply_scoped_added_entries", float64(a.ScopedAdded), "entries")
		add("apply_affected_bridges", float64(a.AffectedBridges), "bridges")
		add("apply_added_entries", float64(a.AddedEntries), "entries")
		add("apply_deleted_entries", float64(a.DeletedEntries), "entries")
	}
	if hv := r.Hypervisor; hv != nil {
		add("hv_setup_ms", hv.SetupMS, "ms")
		add("hv_heap_bytes", float64(hv.HeapBytes), "bytes")
		add("hv_entries_total", float64(hv.Entries), "entries")
		add("hv_apply_hosts", float64(hv.Hosts), "hosts")
		add("hv_apply_switches", float64(hv.Switches), "switches")
		add("hv_apply_runs", float64(hv.Runs), "runs")
		add("hv_apply_median_ms", hv.ApplyMS, "ms")
		add("hv_apply_min_ms", hv.MinMS, "ms")
		add("hv_apply_max_ms", hv.MaxMS, "ms")
		add("hv_delete_median_ms", hv.DeleteMS, "ms")
		add("hv_apply_cpu_median_ms", hv.ApplyCPUMS, "ms")
		add("hv_delete_cpu_median_ms", hv.DeleteCPUMS, "ms")
		add("hv_apply_added_entries", float64(hv.AddedEntries), "entries")
		add("hv_apply_deleted_entries", float64(hv.DeletedEntries), "entries")
		add("hv_apply_changed_switches", float64(hv.ChangedSwitches), "bridges")
		add("hv_apply_flowstats_reads", float64(hv.FlowStatsReads), "reads")
		add("hv_audit_ms", hv.AuditMS, "ms")
		add("hv_audit_changes", float64(hv.AuditChanges), "entries")
	}
	return rows
}

// WriteCSV writes the rows of every result, one figure per line, with
// the header variant,clouds,vms_per_cloud,tenants,hosts_per_tenant,
// switches_per_tenant,metric,value,unit,load1,commit (load1 and commit:
// the variant's, on every row). Values are written with the shortest
// exact decimal form.
func WriteCSV(w io.Writer, results []*Result) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range results {
		c := r.Config
		for _, row := range r.Rows() {
			rec := []string{row.Variant, strconv.Itoa(c.Clouds), strconv.Itoa(c.VMsPerCloud), strconv.Itoa(c.Tenants),
				strconv.Itoa(c.HostsPerTenant), strconv.Itoa(c.SwitchesPerTenant), row.Metric,
				strconv.FormatFloat(row.Value, 'f', -1, 64), row.Unit, strconv.FormatFloat(r.Load1, 'f', 2, 64), r.Commit}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// MarkdownTable renders the main figures of the results side by side,
// one column per variant.
func MarkdownTable(results []*Result) string {
	var b strings.Builder
	b.WriteString("| figure |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.Name)
	}
	b.WriteString("\n|---|")
	for range results {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	line := func(name string, f func(r *Result) string) {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range results {
			fmt.Fprintf(&b, " %s |", f(r))
		}
		b.WriteString("\n")
	}
	msf := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	line("clouds × VMs (edge bridges + gateways)", func(r *Result) string {
		return fmt.Sprintf("%d × %d (%d + %d)", r.Config.Clouds, r.Config.VMsPerCloud, r.Config.Edges(), r.Config.Clouds)
	})
	line("tenants × hosts (virtual switches each)", func(r *Result) string {
		return fmt.Sprintf("%d × %d (%d)", r.Config.Tenants, r.Config.HostsPerTenant, r.Config.SwitchesPerTenant)
	})
	line("flow entries, all bridges", func(r *Result) string { return strconv.Itoa(r.Entries) })
	line("entries per edge bridge, min / median / max", func(r *Result) string {
		return fmt.Sprintf("%d / %d / %d", r.Edge.Min, r.Edge.Median, r.Edge.Max)
	})
	line("… of which tenant tables 10–13, median", func(r *Result) string { return strconv.Itoa(r.TenantEntries.Median) })
	line("entries per gateway, min / median / max", func(r *Result) string {
		return fmt.Sprintf("%d / %d / %d", r.Gateway.Min, r.Gateway.Median, r.Gateway.Max)
	})
	line("flow-stats reply of the fullest edge / gateway, KiB", func(r *Result) string {
		return fmt.Sprintf("%.0f / %.0f", float64(r.MaxEdgeBytes)/1024, float64(r.MaxGatewayByte)/1024)
	})
	line("live Go heap: tenants loaded / + desired entries / + fingerprints, MiB", func(r *Result) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", mib(r.HeapStateBytes), mib(r.HeapDesiredBytes), mib(r.HeapFingerprintBytes))
	})
	line("bbolt file, MiB", func(r *Result) string { return fmt.Sprintf("%.1f", float64(r.StoreFileBytes)/(1<<20)) })
	line("validate all tenants, ms", func(r *Result) string { return msf(r.ValidateMS) })
	line("store all tenants (1 transaction), ms", func(r *Result) string { return msf(r.StoreTenantsMS) })
	line("store all bindings (1 transaction each), ms", func(r *Result) string { return msf(r.StoreBindingsMS) })
	line("load from store, ms", func(r *Result) string { return msf(r.LoadMS) })
	line("compile (pipeline.Compile), ms", func(r *Result) string { return msf(r.CompileMS) })
	line("learning entries, ms", func(r *Result) string { return msf(r.LearningMS) })
	line("fingerprints, ms", func(r *Result) string { return msf(r.FingerprintMS) })
	line("reconcile diff, all bridges in sync, ms", func(r *Result) string { return msf(r.DiffAllMS) })
	apply := func(f func(a *ApplyResult) string) func(r *Result) string {
		return func(r *Result) string {
			if r.Apply == nil {
				return "—"
			}
			return f(r.Apply)
		}
	}
	line("**apply one more tenant**: hosts over clouds (full recompute, as before)", apply(func(a *ApplyResult) string { return fmt.Sprintf("%d over %d", a.Hosts, a.Clouds) }))
	line("full recompute: controller time, median (min–max) of runs, ms; CPU", apply(func(a *ApplyResult) string {
		return fmt.Sprintf("%.1f (%.1f–%.1f, %d runs); %.1f", a.TotalMS, a.MinMS, a.MaxMS, a.Runs, a.CPUMS)
	}))
	line("full recompute: validate / store / load / compile / learning / fingerprint / diff, ms", apply(func(a *ApplyResult) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f / %.1f / %.1f / %.1f / %.1f", a.ValidateMS, a.StoreMS, a.LoadMS, a.CompileMS, a.LearningMS, a.FingerprintMS, a.DiffMS)
	}))
	line("full recompute: bridges changed, entries added", apply(func(a *ApplyResult) string {
		return fmt.Sprintf("%d, %d", a.AffectedBridges, a.AddedEntries)
	}))
	line("full recompute: diff scoped to the tenant's cookies, ms (adds)", apply(func(a *ApplyResult) string {
		return fmt.Sprintf("%.1f (%d)", a.ScopedDiffMS, a.ScopedAdded)
	}))
	hv := func(f func(h *HypervisorApply) string) func(r *Result) string {
		return func(r *Result) string {
			if r.Hypervisor == nil {
				return "—"
			}
			return f(r.Hypervisor)
		}
	}
	line("hypervisor: setup (New, Converge, first reconcile of every switch), ms", hv(func(h *HypervisorApply) string { return msf(h.SetupMS) }))
	line("hypervisor: live heap with the desired state, MiB", hv(func(h *HypervisorApply) string { return fmt.Sprintf("%.1f", mib(h.HeapBytes)) }))
	line("**hypervisor: ApplyTenant, median (min–max) of runs, ms**", hv(func(h *HypervisorApply) string {
		return fmt.Sprintf("**%.1f** (%.1f–%.1f, %d runs)", h.ApplyMS, h.MinMS, h.MaxMS, h.Runs)
	}))
	line("hypervisor: ApplyTenant, process CPU time, median, ms", hv(func(h *HypervisorApply) string { return msf(h.ApplyCPUMS) }))
	line("hypervisor: DeleteTenant, median, ms (CPU)", hv(func(h *HypervisorApply) string {
		return fmt.Sprintf("%.1f (%.1f)", h.DeleteMS, h.DeleteCPUMS)
	}))
	line("hypervisor: apply sends adds / deletes to switches (flow-table reads)", hv(func(h *HypervisorApply) string {
		return fmt.Sprintf("%d / %d to %d (%d)", h.AddedEntries, h.DeletedEntries, h.ChangedSwitches, h.FlowStatsReads)
	}))
	line("hypervisor: audit (full reconcile of every switch), ms (changes)", hv(func(h *HypervisorApply) string {
		return fmt.Sprintf("%.1f (%d)", h.AuditMS, h.AuditChanges)
	}))
	return b.String()
}
