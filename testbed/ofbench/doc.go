// Package ofbench is an OpenFlow 1.3 controller benchmark in the spirit of
// cbench (Sherwood and Yap, "Cbench: an OpenFlow controller benchmarker",
// 2010): it emulates N switches, each with M host MAC addresses, connects
// them to a controller over TCP, completes the OpenFlow 1.3 handshake
// (OpenFlow 1.3.5 spec section 6.3: hello with version bitmap, features,
// port description, echo, barrier), then sends OFPT_PACKET_IN messages of
// new flows and counts the controller's responses (OFPT_FLOW_MOD and
// OFPT_PACKET_OUT) per switch in periods ("runs") of a fixed duration.
//
// Two modes:
//
//   - latency: each switch keeps one packet-in outstanding and sends the
//     next only when the previous was answered, so one switch measures the
//     controller's per-request round trip and N switches keep N requests
//     in flight.
//   - throughput: each switch keeps up to Config.Window packet-ins
//     outstanding (default 64), refilled in batches, which keeps the
//     controller busy without merely filling kernel socket buffers.
//
// A packet-in is "answered" when a response identifies it: a packet-out
// carrying its frame (the frame holds a magic word and a sequence number),
// or, with Config.Buffered, a flow-mod or packet-out carrying its buffer
// id. With the default NO_BUFFER packet-ins a learning switch answers each
// one with a flow-mod plus a packet-out, so responses/s is about twice the
// answered packet-ins/s; with buffer ids (cbench's method) it answers with
// one message. Controllers answer a switch's packet-ins in order, so an
// earlier packet-in still outstanding when a later one is answered was
// dropped: it is counted as lost and its window slot is reused. A packet-in
// not answered within Config.Timeout while the controller sent no response
// at all for that long is counted as a timeout and its slot is reused.
//
// Run is the entry point; cmd/ofbench is a thin command-line wrapper.
package ofbench
