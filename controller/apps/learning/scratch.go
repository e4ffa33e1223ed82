package learning

import (
	"github.com/netrack/openflow/ofp"
)

// scratch holds a prebuilt flow-mod and packet-out whose variable fields are
// filled per packet-in, so the fast path allocates nothing: the session
// encodes *ofp.FlowMod and *ofp.PacketOut into its send buffer before
// FlowMod/PacketOut return ("returns once the message is queued"), after
// which the scratch is reused. Scratches live in a sync.Pool.
type scratch struct {
	fm     ofp.FlowMod
	fields [2]ofp.XM
	inPort [4]byte
	dst    [6]byte
	apply  ofp.InstructionApplyActions
	instr  [1]ofp.Instruction
	out    ofp.ActionOutput
	acts   [1]ofp.Action

	po     ofp.PacketOut
	poOut  ofp.ActionOutput
	poActs [1]ofp.Action
}

// newScratch links the scratch's parts; the FlowMod constants (cookie,
// timeouts, priority) come from a.
func (a *App) newScratch() *scratch {
	s := &scratch{}
	s.fields[0] = ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeInPort, Value: s.inPort[:]}
	s.fields[1] = ofp.XM{Class: ofp.XMClassOpenflowBasic, Type: ofp.XMTypeEthDst, Value: s.dst[:]}
	s.acts[0] = &s.out
	s.apply.Actions = s.acts[:]
	s.instr[0] = &s.apply
	s.fm = ofp.FlowMod{
		Cookie: a.cfg.Cookie, Table: 0, Command: ofp.FlowAdd,
		IdleTimeout: a.idle, HardTimeout: a.hard, Priority: a.cfg.Priority,
		Buffer: ofp.NoBuffer, OutPort: ofp.PortAny, OutGroup: ofp.GroupAny,
		Match:        ofp.Match{Type: ofp.MatchTypeXM, Fields: s.fields[:]},
		Instructions: s.instr[:],
	}
	s.poActs[0] = &s.poOut
	s.po.Actions = s.poActs[:]
	return s
}

// flowMod fills the learned flow entry "in_port=inPort,eth_dst=dst
// actions=output:out" and returns it.
func (s *scratch) flowMod(inPort ofp.PortNo, dst []byte, out ofp.PortNo) *ofp.FlowMod {
	p := uint32(inPort)
	s.inPort = [4]byte{byte(p >> 24), byte(p >> 16), byte(p >> 8), byte(p)}
	copy(s.dst[:], dst)
	s.out = ofp.ActionOutput{Port: out}
	return &s.fm
}

// packetOut fills a packet-out of buffer (or data when buffer is
// ofp.NoBuffer) received on inPort, to port out, and returns it.
func (s *scratch) packetOut(buffer uint32, inPort, out ofp.PortNo, data []byte) *ofp.PacketOut {
	s.po.Buffer, s.po.InPort, s.po.Data = buffer, inPort, nil
	if buffer == ofp.NoBuffer {
		s.po.Data = data
	}
	s.poOut = ofp.ActionOutput{Port: out}
	return &s.po
}

// release clears references to the packet's data before the scratch goes
// back to the pool.
func (s *scratch) release() { s.po.Data = nil }
