package ofwire

import (
	"fmt"

	"github.com/netrack/openflow/ofp"
)

// flowStatsFixedLen is the length of ofp_flow_stats before its match.
const flowStatsFixedLen = 48

// DecodeFlowStats decodes the concatenated bodies of an OFPMP_FLOW reply
// (spec 7.3.5.2): a sequence of ofp_flow_stats, each with its length,
// fixed fields, match and instructions. Actions netrack cannot decode are
// kept raw (see DecodeActions), so one Nicira action does not lose the
// rest of the reply. Errors name the entry index and offset.
func DecodeFlowStats(b []byte) ([]FlowStats, error) {
	var out []FlowStats
	for off := 0; off < len(b); {
		if len(b)-off < flowStatsFixedLen {
			return nil, fmt.Errorf("ofwire: flow stats entry %d at offset %d: %d bytes left, need %d", len(out), off, len(b)-off, flowStatsFixedLen)
		}
		l := int(u16(b[off:]))
		if l < flowStatsFixedLen+8 || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: flow stats entry %d at offset %d: length %d outside %d..%d", len(out), off, l, flowStatsFixedLen+8, len(b)-off)
		}
		e := b[off : off+l]
		fs := FlowStats{
			Table: ofp.Table(e[2]), DurationSec: u32(e[4:]), DurationNSec: u32(e[8:]),
			Priority: u16(e[12:]), IdleTimeout: u16(e[14:]), HardTimeout: u16(e[16:]),
			Flags: ofp.FlowModFlag(u16(e[18:])), Cookie: u64(e[24:]),
			PacketCount: u64(e[32:]), ByteCount: u64(e[40:]),
		}
		m, n, err := DecodeMatch(e[flowStatsFixedLen:], nil)
		if err != nil {
			return nil, fmt.Errorf("flow stats entry %d at offset %d: %w", len(out), off, err)
		}
		fs.Match = m
		if fs.Instructions, err = DecodeInstructions(e[flowStatsFixedLen+n:]); err != nil {
			return nil, fmt.Errorf("flow stats entry %d at offset %d: %w", len(out), off, err)
		}
		out = append(out, fs)
		off += l
	}
	return out, nil
}

// AppendFlowStats appends fs as an ofp_flow_stats entry (spec 7.3.5.2).
// Decoding with DecodeFlowStats and appending again reproduces the input
// byte-exactly when its padding bytes are zero.
func AppendFlowStats(b []byte, fs *FlowStats) ([]byte, error) {
	start := len(b)
	b = append(b, 0, 0, byte(fs.Table), 0)
	b = appendU32(b, fs.DurationSec)
	b = appendU32(b, fs.DurationNSec)
	b = appendU16(b, fs.Priority)
	b = appendU16(b, fs.IdleTimeout)
	b = appendU16(b, fs.HardTimeout)
	b = appendU16(b, uint16(fs.Flags))
	b = append(b, 0, 0, 0, 0)
	b = appendU64(b, fs.Cookie)
	b = appendU64(b, fs.PacketCount)
	b = appendU64(b, fs.ByteCount)
	b = AppendMatch(b, &fs.Match)
	b, err := AppendInstructions(b, fs.Instructions)
	if err != nil {
		return b, err
	}
	l := len(b) - start
	if l > MaxMessageLen {
		return b, fmt.Errorf("ofwire: flow stats entry of %d bytes exceeds 65535", l)
	}
	b[start], b[start+1] = byte(l>>8), byte(l)
	return b, nil
}

// groupDescFixedLen and bucketFixedLen are the lengths of ofp_group_desc
// and ofp_bucket without their variable parts.
const (
	groupDescFixedLen = 8
	bucketFixedLen    = 16
)

// DecodeGroupDescs decodes the concatenated bodies of an OFPMP_GROUP_DESC
// reply (spec 7.3.5.10) including each group's buckets (spec 7.3.4.2),
// which netrack's decoder drops.
func DecodeGroupDescs(b []byte) ([]GroupDesc, error) {
	var out []GroupDesc
	for off := 0; off < len(b); {
		if len(b)-off < groupDescFixedLen {
			return nil, fmt.Errorf("ofwire: group desc entry %d at offset %d: %d bytes left, need %d", len(out), off, len(b)-off, groupDescFixedLen)
		}
		l := int(u16(b[off:]))
		if l < groupDescFixedLen || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: group desc entry %d at offset %d: length %d outside %d..%d", len(out), off, l, groupDescFixedLen, len(b)-off)
		}
		e := b[off : off+l]
		gd := GroupDesc{Type: ofp.GroupType(e[2]), Group: ofp.Group(u32(e[4:]))}
		bk, err := DecodeBuckets(e[groupDescFixedLen:])
		if err != nil {
			return nil, fmt.Errorf("group desc entry %d (group %d): %w", len(out), gd.Group, err)
		}
		gd.Buckets = bk
		out = append(out, gd)
		off += l
	}
	return out, nil
}

// DecodeBuckets decodes a list of ofp_bucket (spec 7.3.4.2) that fills b.
func DecodeBuckets(b []byte) ([]ofp.Bucket, error) {
	var out []ofp.Bucket
	for off := 0; off < len(b); {
		if len(b)-off < bucketFixedLen {
			return nil, fmt.Errorf("ofwire: bucket %d at offset %d: %d bytes left, need %d", len(out), off, len(b)-off, bucketFixedLen)
		}
		l := int(u16(b[off:]))
		if l < bucketFixedLen || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: bucket %d at offset %d: length %d outside %d..%d", len(out), off, l, bucketFixedLen, len(b)-off)
		}
		e := b[off : off+l]
		bk := ofp.Bucket{Weight: u16(e[2:]), WatchPort: ofp.PortNo(u32(e[4:])), WatchGroup: ofp.Group(u32(e[8:]))}
		acts, err := DecodeActions(e[bucketFixedLen:])
		if err != nil {
			return nil, fmt.Errorf("bucket %d: %w", len(out), err)
		}
		bk.Actions = acts
		out = append(out, bk)
		off += l
	}
	return out, nil
}

// meterConfigFixedLen and meterBandLen are the lengths of
// ofp_meter_config without bands and of a standard ofp_meter_band.
const (
	meterConfigFixedLen = 8
	meterBandLen        = 16
)

// DecodeMeterConfigs decodes the concatenated bodies of an
// OFPMP_METER_CONFIG reply (spec 7.3.5.13) including each meter's bands
// (spec 7.3.4.4), which netrack's decoder drops. Drop and DSCP-remark
// bands become netrack types; experimenter bands longer than 16 bytes and
// unknown band types become *RawMeterBand.
func DecodeMeterConfigs(b []byte) ([]MeterConfig, error) {
	var out []MeterConfig
	for off := 0; off < len(b); {
		if len(b)-off < meterConfigFixedLen {
			return nil, fmt.Errorf("ofwire: meter config entry %d at offset %d: %d bytes left, need %d", len(out), off, len(b)-off, meterConfigFixedLen)
		}
		l := int(u16(b[off:]))
		if l < meterConfigFixedLen || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: meter config entry %d at offset %d: length %d outside %d..%d", len(out), off, l, meterConfigFixedLen, len(b)-off)
		}
		e := b[off : off+l]
		mc := MeterConfig{Flags: ofp.MeterFlag(u16(e[2:])), Meter: ofp.Meter(u32(e[4:]))}
		bands, err := DecodeMeterBands(e[meterConfigFixedLen:])
		if err != nil {
			return nil, fmt.Errorf("meter config entry %d (meter %d): %w", len(out), mc.Meter, err)
		}
		mc.Bands = bands
		out = append(out, mc)
		off += l
	}
	return out, nil
}

// DecodeMeterBands decodes a list of meter bands (spec 7.3.4.4) that
// fills b.
func DecodeMeterBands(b []byte) (ofp.MeterBands, error) {
	var out ofp.MeterBands
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return nil, fmt.Errorf("ofwire: band %d at offset %d: %d bytes left, too short for a band header", len(out), off, len(b)-off)
		}
		t, l := ofp.MeterBandType(u16(b[off:])), int(u16(b[off+2:]))
		if l < meterBandLen || off+l > len(b) {
			return nil, fmt.Errorf("ofwire: band %d (type %d) at offset %d: length %d outside %d..%d", len(out), t, off, l, meterBandLen, len(b)-off)
		}
		e := b[off : off+l : off+l]
		var band ofp.MeterBand
		switch {
		case t == ofp.MeterBandTypeDrop && l == meterBandLen && u32(e[12:]) == 0:
			band = &ofp.MeterBandDrop{Rate: u32(e[4:]), BurstSize: u32(e[8:])}
		case t == ofp.MeterBandTypeDSCPRemark && l == meterBandLen && e[13]|e[14]|e[15] == 0:
			band = &ofp.MeterBandDSCPRemark{Rate: u32(e[4:]), BurstSize: u32(e[8:]), PrecLevel: e[12]}
		case t == ofp.MeterBandTypeExperimenter && l == meterBandLen:
			band = &ofp.MeterBandExperimenter{Rate: u32(e[4:]), BurstSize: u32(e[8:]), Experimenter: u32(e[12:])}
		default:
			band = &RawMeterBand{BandType: t, Raw: e}
		}
		out = append(out, band)
		off += l
	}
	return out, nil
}
