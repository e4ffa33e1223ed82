// Package controller is Skyvisor's OpenFlow 1.3 session layer and app
// API. Section numbers refer to the OpenFlow Switch Specification 1.3.5.
//
// # Apps
//
// An App has a Name and implements any of SwitchUpHandler,
// SwitchDownHandler, PacketInHandler, PortStatusHandler,
// FlowRemovedHandler and ErrorHandler. New records which ones, once.
// Handlers for one switch run one at a time, in registration order, on
// that switch's event goroutine; different switches run in parallel, so a
// slow app slows only the switch it is slow on. A PacketInHandler
// returning Stop hides the packet-in from later apps. A panic in a
// handler is recovered and logged with the app name, DPID and stack; the
// session continues. Handlers get a context that is cancelled when the
// session ends (SwitchDown gets a fresh one bounded by RequestTimeout).
//
// # Session lifecycle
//
// One session runs per connection (Serve accepts TCP, TLS or unix-socket
// connections; ServeConn runs a session on any net.Conn):
//
//  1. Hello (6.3.1, 7.5.1). Both sides send OFPT_HELLO at once; ours has
//     version 0x04 and a version bitmap listing only 1.3. The switch's
//     first message must be a hello. With a bitmap it must list 1.3;
//     without one its header version must be >= 0x04 (the session then
//     uses 1.3; the versions the switch offered are logged at debug
//     level). Otherwise the controller sends OFPT_ERROR
//     OFPET_HELLO_FAILED/OFPHFC_INCOMPATIBLE with an ASCII reason, flushes
//     and closes.
//  2. Features (7.3.1): OFPT_FEATURES_REQUEST gives the DPID and n_tables.
//     Auxiliary connections (auxiliary_id != 0) are refused.
//  3. Port description (7.3.5.7): an OFPMP_PORT_DESC multipart request
//     fills the port snapshot (Switch.Ports).
//     Steps 1-3 are bounded by Config.HandshakeTimeout.
//  4. Registration: the Switch is listed by Controller.Switches. If a
//     session with the same DPID exists, it is closed (logged) and its
//     SwitchDown handlers run before this session's SwitchUp.
//  5. SwitchUp handlers run, then the event loop dispatches packet-in
//     (7.4.1), port status (7.4.3; the snapshot is updated first), flow
//     removed (7.4.2) and unclaimed errors (7.4.4) in arrival order.
//  6. End: the connection fails or closes, nothing arrives for
//     DeadPeerTimeout, a message is malformed, the session is replaced or
//     the Serve/ServeConn context is done. Done is closed, pending
//     requests fail with an error wrapping ErrClosed, queued events are
//     dropped, the Switch is unlisted and SwitchDown handlers run.
//
// # Goroutines per session
//
//   - reader: reads each message into a 64 KiB bufio buffer (no copy for
//     messages it does not keep), answers echo requests (same xid and
//     payload), hands replies to waiting requests by xid, reassembles
//     multipart replies (OFPMPF_REPLY_MORE), routes errors, decodes async
//     messages and queues them as events. A malformed message (header
//     length < 8, truncated body, bad OXM or action lengths) ends that
//     session with a logged reason; input never panics the process.
//   - writer: the only goroutine that writes. Senders encode into the
//     session's send buffer under a lock (FlowMod and PacketOut with
//     reflection-free encoders that produce netrack's exact bytes); the
//     writer swaps the buffer out and writes everything queued with one
//     Write, so bursts are batched. The queue is bounded by
//     Config.SendQueueLen messages (and 16 MiB): a sender to a full queue
//     waits until the writer drains it or its ctx is done; a switch that
//     stops reading never blocks another switch's session.
//   - events: runs the handlers (see Apps). Packet-ins beyond
//     SendQueueLen queued events make the reader wait (TCP backpressure)
//     unless a request is pending, in which case up to 16x that many are
//     queued and later ones dropped (logged).
//   - keepalive: sends OFPT_ECHO_REQUEST after EchoInterval without input
//     and closes the session after DeadPeerTimeout without input (6.3.7).
//
// # Requests and errors
//
// Every message gets the next xid of its session. Request, Multipart,
// Barrier and the typed stats calls (FlowStats, GroupDesc, MeterConfig,
// PortDesc) register the xid before the message can reach the switch and
// wait for the reply with that xid (replies may come in any order). An
// OFPT_ERROR whose xid belongs to a waiting call is returned by it as
// *OFPError. An error for an asynchronous message (FlowMod, GroupMod,
// MeterMod, PacketOut, Send) goes to the Barrier queued after that
// message, if one is pending, or else to the ErrorHandler apps; a
// Barrier also collects such errors that arrived shortly before it was
// called (see Switch.Barrier).
//
// # Why the session frames messages itself
//
// netrack/openflow v0.1.0 supplies the ofp message types and the of.Header
// and of.Type constants; of.Conn, of.Server and of.ServeMux are not used.
// Server runs each received message on a goroutine of its own by default
// (OnDemandRoutineRunner), so packet-ins, port status and the parts of one
// multipart reply reach handlers in any order. ServeMux walks a map of
// matchers in random order, and a one-shot handler for a reply's xid
// (HandleOnce with TransactionMatcher) gets only one of the messages that
// match it: the other parts of a multipart reply, or a reply that arrives
// before the handler is registered, go to DiscardHandler and are lost.
// of.Conn.Receive copies every message into a freshly allocated buffer, and
// Send copies the body through three more buffers and writes to the socket
// under a lock (Server flushes once per reply), with no bound on how long a
// slow switch makes a sender wait. The session instead reads messages in
// place from its bufio buffer (copying only what it keeps: replies, event
// payloads), matches replies by xid on its single reader, and batches the
// bounded send queue into one Write (see Goroutines per session).
//
// Decoders for what netrack cannot decode (hello version bitmaps, group
// buckets, meter bands, experimenter actions in flow stats, OFPAT_POP_PBB,
// on which it panics) live in the ofwire sub-package; its workaround tests
// fail once netrack decodes them correctly.
package controller
