package snapshot

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"
	"github.com/skyvisor/skyvisor/ovsdb"
	"github.com/skyvisor/skyvisor/ovsdb/vswitch"
)

// ErrNoBridge is returned (wrapped, with the bridge name) by ReadBridge when
// the bridge does not exist.
var ErrNoBridge = errors.New("bridge not found")

// Config reads and writes the OVSDB configuration of bridges. *OVSDB is the
// real one; tests use a fake.
type Config interface {
	// ReadBridge returns the bridge's configuration, or an error wrapping
	// ErrNoBridge.
	ReadBridge(ctx context.Context, name string) (BridgeConfig, error)
	// ApplyBridge makes the bridge match want in one transaction and waits
	// until ovs-vswitchd assigned every interface's OpenFlow port; it
	// returns the plan it applied (also on error, with what was planned).
	ApplyBridge(ctx context.Context, want *BridgeConfig) (ConfigPlan, error)
}

// OVSDB is a connection to one ovsdb-server (RFC 7047) that reads and
// writes whole bridge configurations: Bridge, Port, Interface, Controller,
// QoS and Queue rows. It is separate from package ovsdb's Client because
// that client monitors only the columns it manages (no Interface options of
// system ports, no QoS or Queue tables) and has no generic add-port; see
// docs/snapshot.md.
type OVSDB struct {
	lib client.Client
}

// DialOVSDB connects to endpoint ("unix:/path", "tcp:host:port" or
// "ssl:host:port", the syntax of ovsdb.ParseEndpoint) and monitors every
// table. logger may be nil (slog.Default); tlsConfig is required for ssl:
// (Hypervisor.OVSDBTLSConfig) and ignored otherwise. Close it when done.
func DialOVSDB(ctx context.Context, endpoint string, logger *slog.Logger, tlsConfig *tls.Config) (*OVSDB, error) {
	ep, err := ovsdb.ParseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	dbModel, err := vswitch.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("snapshot: ovsdb model: %w", err)
	}
	lg := logr.FromSlogHandler(logger.With("ovsdb", ep.String()).Handler()).WithName("libovsdb").V(1)
	opts := []client.Option{client.WithEndpoint(ep.String()), client.WithLogger(&lg)}
	if ep.IsSSL() {
		if tlsConfig == nil {
			return nil, fmt.Errorf("snapshot: ovsdb %s: ssl endpoint without a TLS configuration", ep)
		}
		opts = append(opts, client.WithTLSConfig(tlsConfig))
	}
	lib, err := client.NewOVSDBClient(dbModel, opts...)
	if err != nil {
		return nil, fmt.Errorf("snapshot: ovsdb %s: %w", ep, err)
	}
	if err := lib.Connect(ctx); err != nil {
		return nil, fmt.Errorf("snapshot: ovsdb connect %s: %w", ep, err)
	}
	if _, err := lib.MonitorAll(ctx); err != nil {
		lib.Close()
		return nil, fmt.Errorf("snapshot: ovsdb monitor %s: %w", ep, err)
	}
	return &OVSDB{lib: lib}, nil
}

// Close disconnects.
func (o *OVSDB) Close() { o.lib.Close() }

// tables is one read of the cache, indexed by UUID.
type tables struct {
	root    *vswitch.OpenvSwitch
	bridges []*vswitch.Bridge
	ports   map[string]*vswitch.Port
	ifaces  map[string]*vswitch.Interface
	ctrls   map[string]*vswitch.Controller
	qos     map[string]*vswitch.QoS
	queues  map[string]*vswitch.Queue
}

func (o *OVSDB) read(ctx context.Context) (*tables, error) {
	var (
		roots   []*vswitch.OpenvSwitch
		bridges []*vswitch.Bridge
		ports   []*vswitch.Port
		ifaces  []*vswitch.Interface
		ctrls   []*vswitch.Controller
		qoss    []*vswitch.QoS
		queues  []*vswitch.Queue
	)
	for _, l := range []any{&roots, &bridges, &ports, &ifaces, &ctrls, &qoss, &queues} {
		if err := o.lib.List(ctx, l); err != nil {
			return nil, fmt.Errorf("snapshot: read ovsdb cache: %w", err)
		}
	}
	t := &tables{bridges: bridges, ports: map[string]*vswitch.Port{}, ifaces: map[string]*vswitch.Interface{},
		ctrls: map[string]*vswitch.Controller{}, qos: map[string]*vswitch.QoS{}, queues: map[string]*vswitch.Queue{}}
	if len(roots) > 0 {
		t.root = roots[0]
	}
	for _, p := range ports {
		t.ports[p.UUID] = p
	}
	for _, i := range ifaces {
		t.ifaces[i.UUID] = i
	}
	for _, c := range ctrls {
		t.ctrls[c.UUID] = c
	}
	for _, q := range qoss {
		t.qos[q.UUID] = q
	}
	for _, q := range queues {
		t.queues[q.UUID] = q
	}
	return t, nil
}

func (t *tables) bridge(name string) *vswitch.Bridge {
	for _, b := range t.bridges {
		if b.Name == name {
			return b
		}
	}
	return nil
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func deref[T ~string](p *T) string {
	if p == nil {
		return ""
	}
	return string(*p)
}

// config converts the rows of bridge b.
func (t *tables) config(b *vswitch.Bridge) BridgeConfig {
	bc := BridgeConfig{
		Name: b.Name, DatapathID: deref(b.DatapathID), DatapathType: b.DatapathType,
		Protocols: sortedCopy(b.Protocols), FailMode: deref(b.FailMode),
		OtherConfig: nonEmpty(b.OtherConfig), ExternalIDs: nonEmpty(b.ExternalIDs),
	}
	for _, u := range b.Controller {
		if c := t.ctrls[u]; c != nil {
			bc.Controllers = append(bc.Controllers, ControllerConfig{Target: c.Target, ConnectionMode: deref(c.ConnectionMode)})
		}
	}
	bc.Controllers = sortedControllers(bc.Controllers)
	for _, pu := range b.Ports {
		p := t.ports[pu]
		if p == nil {
			continue
		}
		pc := PortConfig{Name: p.Name, ExternalIDs: nonEmpty(p.ExternalIDs), OtherConfig: nonEmpty(p.OtherConfig)}
		if p.Tag != nil {
			v := *p.Tag
			pc.Tag = &v
		}
		if p.QOS != nil {
			if q := t.qos[*p.QOS]; q != nil {
				qc := &QoSConfig{Type: q.Type, OtherConfig: nonEmpty(q.OtherConfig), ExternalIDs: nonEmpty(q.ExternalIDs)}
				for n, qu := range q.Queues {
					if qq := t.queues[qu]; qq != nil {
						if qc.Queues == nil {
							qc.Queues = map[int]QueueConfig{}
						}
						qc.Queues[n] = QueueConfig{DSCP: qq.DSCP, OtherConfig: nonEmpty(qq.OtherConfig), ExternalIDs: nonEmpty(qq.ExternalIDs)}
					}
				}
				pc.QoS = qc
			}
		}
		for _, iu := range p.Interfaces {
			i := t.ifaces[iu]
			if i == nil {
				continue
			}
			ic := InterfaceConfig{Name: i.Name, Type: i.Type, Options: nonEmpty(i.Options),
				MAC: deref(i.MACInUse), MACRequest: deref(i.MAC), MTURequest: i.MTURequest,
				ExternalIDs: nonEmpty(i.ExternalIDs), OtherConfig: nonEmpty(i.OtherConfig)}
			if i.Ofport != nil {
				ic.OFPort = *i.Ofport
			}
			pc.Interfaces = append(pc.Interfaces, ic)
		}
		slices.SortFunc(pc.Interfaces, func(a, b InterfaceConfig) int { return strings.Compare(a.Name, b.Name) })
		bc.Ports = append(bc.Ports, pc)
	}
	slices.SortFunc(bc.Ports, func(a, b PortConfig) int { return strings.Compare(a.Name, b.Name) })
	return bc
}

// ReadBridge implements Config.
func (o *OVSDB) ReadBridge(ctx context.Context, name string) (BridgeConfig, error) {
	t, err := o.read(ctx)
	if err != nil {
		return BridgeConfig{}, err
	}
	b := t.bridge(name)
	if b == nil {
		return BridgeConfig{}, fmt.Errorf("snapshot: bridge %q: %w", name, ErrNoBridge)
	}
	return t.config(b), nil
}

// ApplyBridge implements Config: one transaction (RFC 7047 §4.1.3)
// creating or updating the bridge, its missing ports with interfaces,
// ofport_request and QoS/queues, its controllers; results checked with
// ovsdb.CheckOperationResults. It then waits (until ctx ends) for
// ovs-vswitchd to report every interface's ofport, and fails naming the
// interface whose port number differs from the snapshot's.
func (o *OVSDB) ApplyBridge(ctx context.Context, want *BridgeConfig) (ConfigPlan, error) {
	t, err := o.read(ctx)
	if err != nil {
		return ConfigPlan{}, err
	}
	var cur *BridgeConfig
	b := t.bridge(want.Name)
	if b != nil {
		c := t.config(b)
		cur = &c
	}
	other := map[string]string{}
	for _, ob := range t.bridges {
		if ob.Name == want.Name {
			continue
		}
		for _, pu := range ob.Ports {
			if p := t.ports[pu]; p != nil {
				other[p.Name] = ob.Name
			}
		}
	}
	plan := PlanConfig(cur, want, other)
	if len(plan.Conflicts) > 0 {
		return plan, fmt.Errorf("snapshot: bridge %q: %s", want.Name, strings.Join(plan.Conflicts, "; "))
	}
	if !plan.Empty() {
		ops, err := o.ops(t, b, want, &plan)
		if err != nil {
			return plan, fmt.Errorf("snapshot: bridge %q: build transaction: %w", want.Name, err)
		}
		res, err := o.lib.Transact(ctx, ops...)
		if err != nil {
			return plan, fmt.Errorf("snapshot: bridge %q: transact (%s): %w", want.Name, plan.String(), err)
		}
		if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
			return plan, fmt.Errorf("snapshot: bridge %q: transaction (%s) failed: %w", want.Name, plan.String(), err)
		}
	}
	return plan, o.waitPorts(ctx, want)
}

// waitPorts waits until every interface of want has an ofport, and checks
// it against the captured one.
func (o *OVSDB) waitPorts(ctx context.Context, want *BridgeConfig) error {
	for {
		cur, err := o.ReadBridge(ctx, want.Name)
		if err != nil {
			return err
		}
		have := map[string]InterfaceConfig{}
		for _, p := range cur.Ports {
			for _, i := range p.Interfaces {
				have[i.Name] = i
			}
		}
		var pending []string
		var bad []string
		for _, p := range want.Ports {
			for _, i := range p.Interfaces {
				h := have[i.Name]
				switch {
				case h.OFPort == 0:
					pending = append(pending, i.Name)
				case h.OFPort < 0:
					bad = append(bad, fmt.Sprintf("interface %q: ovs-vswitchd could not open it (ofport -1)", i.Name))
				case restorableOFPort(&i) != nil && h.OFPort != i.OFPort:
					bad = append(bad, fmt.Sprintf("interface %q: ofport %d, snapshot has %d", i.Name, h.OFPort, i.OFPort))
				}
			}
		}
		if len(bad) > 0 {
			return fmt.Errorf("snapshot: bridge %q: %s", want.Name, strings.Join(bad, "; "))
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("snapshot: bridge %q: no ofport for %s: %w", want.Name, strings.Join(pending, ", "), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ops turns plan into transaction operations; b is the current bridge row
// (nil when plan.CreateBridge).
func (o *OVSDB) ops(t *tables, b *vswitch.Bridge, want *BridgeConfig, plan *ConfigPlan) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	add := func(o []libovsdb.Operation, err error) error {
		ops = append(ops, o...)
		return err
	}
	seq := 0
	named := func(kind string) string { seq++; return fmt.Sprintf("skn%s%d", kind, seq) }
	qosRows := func(pc *PortConfig) (string, error) {
		q := &vswitch.QoS{UUID: named("qos"), Type: pc.QoS.Type, OtherConfig: pc.QoS.OtherConfig,
			ExternalIDs: pc.QoS.ExternalIDs, Queues: map[int]string{}}
		for n, qc := range pc.QoS.Queues {
			qq := &vswitch.Queue{UUID: named("queue"), DSCP: qc.DSCP, OtherConfig: qc.OtherConfig, ExternalIDs: qc.ExternalIDs}
			if err := add(o.lib.Create(qq)); err != nil {
				return "", err
			}
			q.Queues[n] = qq.UUID
		}
		return q.UUID, add(o.lib.Create(q))
	}
	var newPorts []string
	for i := range plan.AddPorts {
		pc := &plan.AddPorts[i]
		port := &vswitch.Port{UUID: named("port"), Name: pc.Name, ExternalIDs: pc.ExternalIDs, OtherConfig: pc.OtherConfig, Tag: pc.Tag}
		for j := range pc.Interfaces {
			ic := &pc.Interfaces[j]
			row := ifaceRow(ic)
			row.UUID = named("iface")
			if err := add(o.lib.Create(row)); err != nil {
				return nil, err
			}
			port.Interfaces = append(port.Interfaces, row.UUID)
		}
		if pc.QoS != nil {
			u, err := qosRows(pc)
			if err != nil {
				return nil, err
			}
			port.QOS = &u
		}
		if err := add(o.lib.Create(port)); err != nil {
			return nil, err
		}
		newPorts = append(newPorts, port.UUID)
	}
	for i := range plan.UpdateInterfaces {
		ic := &plan.UpdateInterfaces[i]
		var uuid string
		for u, row := range t.ifaces {
			if row.Name == ic.Name {
				uuid = u
			}
		}
		row := ifaceRow(ic)
		row.UUID = uuid
		fields := []any{&row.Type, &row.Options, &row.ExternalIDs}
		if row.OfportRequest != nil {
			fields = append(fields, &row.OfportRequest)
		}
		if row.MAC != nil {
			fields = append(fields, &row.MAC)
		}
		if row.MTURequest != nil {
			fields = append(fields, &row.MTURequest)
		}
		if err := add(o.lib.Where(row).Update(row, fields...)); err != nil {
			return nil, err
		}
	}
	for i := range plan.SetQoS {
		pc := &plan.SetQoS[i]
		u, err := qosRows(pc)
		if err != nil {
			return nil, err
		}
		var puuid string
		for pu, p := range t.ports {
			if p.Name == pc.Name {
				puuid = pu
			}
		}
		row := &vswitch.Port{UUID: puuid, QOS: &u}
		if err := add(o.lib.Where(row).Update(row, &row.QOS)); err != nil {
			return nil, err
		}
	}
	var ctrlUUIDs []string
	if plan.SetControllers {
		for _, c := range plan.Controllers {
			ct := &vswitch.Controller{UUID: named("ctrl"), Target: c.Target}
			if c.ConnectionMode != "" {
				m := c.ConnectionMode
				ct.ConnectionMode = &m
			}
			if err := add(o.lib.Create(ct)); err != nil {
				return nil, err
			}
			ctrlUUIDs = append(ctrlUUIDs, ct.UUID)
		}
	}
	row := &vswitch.Bridge{Name: want.Name, DatapathType: want.DatapathType, Protocols: want.Protocols,
		OtherConfig: want.OtherConfig, ExternalIDs: want.ExternalIDs}
	if row.Protocols == nil {
		row.Protocols = []string{}
	}
	if row.OtherConfig == nil {
		row.OtherConfig = map[string]string{}
	}
	if row.ExternalIDs == nil {
		row.ExternalIDs = map[string]string{}
	}
	if want.FailMode != "" {
		fm := want.FailMode
		row.FailMode = &fm
	}
	if plan.CreateBridge {
		if t.root == nil {
			return nil, errors.New("Open_vSwitch table has no row (database not initialized)")
		}
		local := &vswitch.Interface{UUID: named("iface"), Name: want.Name, Type: "internal"}
		for _, pc := range want.Ports {
			if pc.Name == want.Name && len(pc.Interfaces) == 1 {
				local = ifaceRow(&pc.Interfaces[0])
				local.UUID = named("iface")
				local.OfportRequest = nil
			}
		}
		lport := &vswitch.Port{UUID: named("port"), Name: want.Name, Interfaces: []string{local.UUID}}
		row.UUID = named("bridge")
		row.Ports = append([]string{lport.UUID}, newPorts...)
		row.Controller = ctrlUUIDs
		if err := add(o.lib.Create(local, lport, row)); err != nil {
			return nil, err
		}
		root := &vswitch.OpenvSwitch{UUID: t.root.UUID}
		return ops, add(o.lib.Where(root).Mutate(root, model.Mutation{
			Field: &root.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: []string{row.UUID},
		}))
	}
	row.UUID = b.UUID
	var fields []any
	for _, col := range plan.BridgeColumns {
		switch col {
		case "datapath_type":
			fields = append(fields, &row.DatapathType)
		case "protocols":
			fields = append(fields, &row.Protocols)
		case "fail_mode":
			fields = append(fields, &row.FailMode)
		case "other_config":
			fields = append(fields, &row.OtherConfig)
		case "external_ids":
			fields = append(fields, &row.ExternalIDs)
		}
	}
	if plan.SetControllers {
		row.Controller = ctrlUUIDs
		if row.Controller == nil {
			row.Controller = []string{}
		}
		fields = append(fields, &row.Controller)
	}
	if len(fields) > 0 {
		if err := add(o.lib.Where(row).Update(row, fields...)); err != nil {
			return nil, err
		}
	}
	if len(newPorts) > 0 {
		if err := add(o.lib.Where(row).Mutate(row, model.Mutation{
			Field: &row.Ports, Mutator: libovsdb.MutateOperationInsert, Value: newPorts,
		})); err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// ifaceRow is the Interface row that restores ic.
func ifaceRow(ic *InterfaceConfig) *vswitch.Interface {
	row := &vswitch.Interface{Name: ic.Name, Type: ic.Type, Options: ic.Options, ExternalIDs: ic.ExternalIDs,
		OtherConfig: ic.OtherConfig, OfportRequest: restorableOFPort(ic), MTURequest: ic.MTURequest}
	if row.Type == "system" {
		row.Type = ""
	}
	if row.Options == nil {
		row.Options = map[string]string{}
	}
	if row.ExternalIDs == nil {
		row.ExternalIDs = map[string]string{}
	}
	if ic.MACRequest != "" {
		m := ic.MACRequest
		row.MAC = &m
	}
	return row
}
