// Package ofwire holds allocation-light OpenFlow 1.3 wire decoders and
// encoders used by package controller, and the workarounds for what
// github.com/netrack/openflow/ofp cannot decode: hello version bitmaps,
// group buckets, meter bands, experimenter (Nicira) actions inside flow
// stats, and the pop-PBB action on which netrack panics.
//
// Encoders (AppendFlowMod, AppendPacketOut, ...) produce output
// byte-identical to the corresponding netrack WriteTo methods; decoders
// check every length field against the buffer and return an error naming
// the structure at fault instead of panicking. Decoded OXM values and raw
// actions alias the input buffer.
//
// Section numbers refer to the OpenFlow Switch Specification 1.3.5.
package ofwire

// constError is an error usable as a constant.
type constError string

func (e constError) Error() string { return string(e) }

const errReadFromUnsupported = constError("ofwire: ReadFrom not supported, decode with the ofwire Decode functions")
