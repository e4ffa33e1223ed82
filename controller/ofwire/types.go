package ofwire

import (
	"time"

	"github.com/netrack/openflow/ofp"
)

// FlowStats is one ofp_flow_stats entry of an OFPMP_FLOW multipart reply
// (OpenFlow 1.3.5 spec section 7.3.5.2). Unlike ofp.FlowStats it is
// decoded by DecodeFlowStats, which keeps actions netrack cannot decode
// (experimenter actions such as Nicira learn/resubmit/ct, pop-PBB) as
// *ExperimenterAction or *RawAction instead of failing the whole reply.
type FlowStats struct {
	Table        ofp.Table       // table_id
	DurationSec  uint32          // duration_sec: seconds the flow has been alive
	DurationNSec uint32          // duration_nsec: nanoseconds beyond DurationSec
	Priority     uint16          // priority
	IdleTimeout  uint16          // idle_timeout, seconds
	HardTimeout  uint16          // hard_timeout, seconds
	Flags        ofp.FlowModFlag // flags (OFPFF_*)
	Cookie       uint64          // cookie
	PacketCount  uint64          // packet_count
	ByteCount    uint64          // byte_count
	Match        ofp.Match       // match (OXM); values alias the reply buffer
	Instructions ofp.Instructions
}

// Duration returns DurationSec and DurationNSec as a time.Duration.
func (f *FlowStats) Duration() time.Duration {
	return time.Duration(f.DurationSec)*time.Second + time.Duration(f.DurationNSec)
}

// GroupDesc is one ofp_group_desc entry of an OFPMP_GROUP_DESC multipart
// reply (spec 7.3.5.10), with its buckets (netrack's decoder drops them).
type GroupDesc struct {
	Type    ofp.GroupType // group type: all, select, indirect, fast failover
	Group   ofp.Group     // group_id
	Buckets []ofp.Bucket  // buckets with weight, watch port/group and actions
}

// MeterConfig is one ofp_meter_config entry of an OFPMP_METER_CONFIG
// multipart reply (spec 7.3.5.13), with its bands (netrack's decoder
// drops them).
type MeterConfig struct {
	Flags ofp.MeterFlag  // OFPMF_* flags
	Meter ofp.Meter      // meter_id
	Bands ofp.MeterBands // *ofp.MeterBandDrop, *ofp.MeterBandDSCPRemark or *RawMeterBand
}
