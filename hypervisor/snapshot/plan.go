package snapshot

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ConfigPlan is what ApplyBridge changes to make a bridge match a
// snapshot's BridgeConfig. It is computed from the current configuration
// alone (PlanConfig), so it can be shown and tested without a database.
type ConfigPlan struct {
	// CreateBridge is true when the bridge does not exist.
	CreateBridge bool
	// BridgeColumns are the Bridge columns to write (datapath_type,
	// protocols, fail_mode, other_config, external_ids), in that order.
	BridgeColumns []string
	// SetControllers is true when the set of controller targets or a
	// connection mode differs; Controllers is then the new set.
	SetControllers bool
	Controllers    []ControllerConfig
	// AddPorts are ports missing from the bridge (created with their
	// interfaces, ofport_request and QoS).
	AddPorts []PortConfig
	// UpdateInterfaces are interfaces of existing ports whose type,
	// options, ofport_request, mac, mtu_request or external_ids differ.
	UpdateInterfaces []InterfaceConfig
	// SetQoS are existing ports whose QoS is missing (new QoS and Queue
	// rows are created for them).
	SetQoS []PortConfig
	// Conflicts are ports that exist on another bridge of the target, or
	// interfaces that exist under another port: the plan cannot be applied.
	Conflicts []string
}

// Empty reports whether the plan changes nothing.
func (p *ConfigPlan) Empty() bool {
	return !p.CreateBridge && len(p.BridgeColumns) == 0 && !p.SetControllers && len(p.AddPorts) == 0 &&
		len(p.UpdateInterfaces) == 0 && len(p.SetQoS) == 0
}

// String summarizes the plan for reports and errors.
func (p *ConfigPlan) String() string {
	var parts []string
	if p.CreateBridge {
		parts = append(parts, "create bridge")
	}
	if len(p.BridgeColumns) > 0 {
		parts = append(parts, "set bridge "+strings.Join(p.BridgeColumns, ","))
	}
	if p.SetControllers {
		var ts []string
		for _, c := range p.Controllers {
			ts = append(ts, c.Target)
		}
		parts = append(parts, "set controllers ["+strings.Join(ts, " ")+"]")
	}
	for _, pc := range p.AddPorts {
		parts = append(parts, "add port "+pc.Name)
	}
	for _, ic := range p.UpdateInterfaces {
		parts = append(parts, "update interface "+ic.Name)
	}
	for _, pc := range p.SetQoS {
		parts = append(parts, "set qos of port "+pc.Name)
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, "; ")
}

// restorableOFPort is the ofport_request to set for an interface: its
// captured OpenFlow port number, or nil when it had none or is the
// bridge's LOCAL port (65534, which ofport_request cannot name).
func restorableOFPort(ic *InterfaceConfig) *int {
	if ic.OFPort <= 0 || ic.OFPort >= 0xff00 {
		return nil
	}
	v := ic.OFPort
	return &v
}

// ifaceDiffers reports whether cur lacks something want restores.
func ifaceDiffers(cur, want *InterfaceConfig) bool {
	if cur.Type != want.Type && !(cur.Type == "" && want.Type == "system") {
		return true
	}
	if !mapsEqual(cur.Options, want.Options) || !mapsEqual(cur.ExternalIDs, want.ExternalIDs) {
		return true
	}
	if want.MACRequest != "" && cur.MACRequest != want.MACRequest {
		return true
	}
	if want.MTURequest != nil && (cur.MTURequest == nil || *cur.MTURequest != *want.MTURequest) {
		return true
	}
	if r := restorableOFPort(want); r != nil && cur.OFPort != *r {
		return true
	}
	return false
}

func mapsEqual(a, b map[string]string) bool { return len(a) == 0 && len(b) == 0 || maps.Equal(a, b) }

// PlanConfig computes the changes that make cur (the target's current
// bridge, nil when absent) match want. otherPorts maps port names that exist
// on other bridges of the target to their bridge, so a conflict is reported
// instead of a port being moved. Bridge columns are compared as a whole
// (other_config and external_ids are replaced, not merged); ports of cur
// that want lacks are left alone (restore adds, it never removes ports).
func PlanConfig(cur *BridgeConfig, want *BridgeConfig, otherPorts map[string]string) ConfigPlan {
	var p ConfigPlan
	for _, pc := range want.Ports {
		if br, ok := otherPorts[pc.Name]; ok {
			p.Conflicts = append(p.Conflicts, fmt.Sprintf("port %q exists on bridge %q", pc.Name, br))
		}
	}
	if cur == nil {
		p.CreateBridge = true
		cur = &BridgeConfig{Name: want.Name}
	}
	if p.CreateBridge || cur.DatapathType != want.DatapathType {
		p.BridgeColumns = append(p.BridgeColumns, "datapath_type")
	}
	if p.CreateBridge || !slices.Equal(sortedCopy(cur.Protocols), sortedCopy(want.Protocols)) {
		p.BridgeColumns = append(p.BridgeColumns, "protocols")
	}
	if p.CreateBridge || cur.FailMode != want.FailMode {
		p.BridgeColumns = append(p.BridgeColumns, "fail_mode")
	}
	if p.CreateBridge || !mapsEqual(cur.OtherConfig, want.OtherConfig) {
		p.BridgeColumns = append(p.BridgeColumns, "other_config")
	}
	if p.CreateBridge || !mapsEqual(cur.ExternalIDs, want.ExternalIDs) {
		p.BridgeColumns = append(p.BridgeColumns, "external_ids")
	}
	if !slices.Equal(sortedControllers(cur.Controllers), sortedControllers(want.Controllers)) {
		p.SetControllers = true
		p.Controllers = sortedControllers(want.Controllers)
	}
	curPorts := map[string]*PortConfig{}
	curIfaces := map[string]*InterfaceConfig{}
	ifacePort := map[string]string{}
	for i := range cur.Ports {
		curPorts[cur.Ports[i].Name] = &cur.Ports[i]
		for j := range cur.Ports[i].Interfaces {
			ic := &cur.Ports[i].Interfaces[j]
			curIfaces[ic.Name] = ic
			ifacePort[ic.Name] = cur.Ports[i].Name
		}
	}
	for _, pc := range want.Ports {
		if pc.Name == want.Name {
			continue // the bridge's internal port, made with the bridge
		}
		if _, ok := otherPorts[pc.Name]; ok {
			continue
		}
		cp, ok := curPorts[pc.Name]
		if !ok {
			p.AddPorts = append(p.AddPorts, pc)
			continue
		}
		for _, ic := range pc.Interfaces {
			ci, ok := curIfaces[ic.Name]
			if !ok || ifacePort[ic.Name] != pc.Name {
				p.Conflicts = append(p.Conflicts, fmt.Sprintf("port %q: interface %q missing or under another port", pc.Name, ic.Name))
				continue
			}
			if ifaceDiffers(ci, &ic) {
				p.UpdateInterfaces = append(p.UpdateInterfaces, ic)
			}
		}
		if pc.QoS != nil && cp.QoS == nil {
			p.SetQoS = append(p.SetQoS, pc)
		}
	}
	return p
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

// sortedControllers returns cs sorted by target with "" connection modes
// kept as they are.
func sortedControllers(cs []ControllerConfig) []ControllerConfig {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b ControllerConfig) int { return strings.Compare(a.Target, b.Target) })
	return out
}
