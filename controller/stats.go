package controller

import "github.com/skyvisor/skyvisor/controller/ofwire"

// FlowStats is one flow entry of an OFPMP_FLOW reply (OpenFlow 1.3.5 spec
// section 7.3.5.2); see ofwire.FlowStats.
type FlowStats = ofwire.FlowStats

// GroupDesc is one group of an OFPMP_GROUP_DESC reply (spec 7.3.5.10);
// see ofwire.GroupDesc.
type GroupDesc = ofwire.GroupDesc

// MeterConfig is one meter of an OFPMP_METER_CONFIG reply (spec
// 7.3.5.13); see ofwire.MeterConfig.
type MeterConfig = ofwire.MeterConfig

// ExperimenterAction is an OFPAT_EXPERIMENTER action kept as raw bytes
// (e.g. Nicira resubmit, learn, ct); see ofwire.ExperimenterAction.
type ExperimenterAction = ofwire.ExperimenterAction
