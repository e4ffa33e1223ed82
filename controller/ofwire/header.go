package ofwire

import (
	"encoding/binary"
	"fmt"
)

const (
	// HeaderLen is the length of struct ofp_header (spec 7.1).
	HeaderLen = 8
	// Version13 is ofp_header.version for OpenFlow 1.3 (spec 7.1).
	Version13 = 0x04
	// MaxMessageLen is the largest OpenFlow message: length is 16 bits.
	MaxMessageLen = 0xffff
)

// AppendHeader appends an ofp_header (spec 7.1) with version 1.3.
func AppendHeader(b []byte, msgType uint8, length uint16, xid uint32) []byte {
	return append(b, Version13, msgType, byte(length>>8), byte(length), byte(xid>>24), byte(xid>>16), byte(xid>>8), byte(xid))
}

// FinishMessage patches the length field of the message starting at
// msg[0] (whose header AppendHeader wrote) to len(msg). It fails when the
// message exceeds 65535 bytes.
func FinishMessage(msg []byte) error {
	if len(msg) < HeaderLen {
		return fmt.Errorf("ofwire: message of %d bytes is shorter than the header", len(msg))
	}
	if len(msg) > MaxMessageLen {
		return fmt.Errorf("ofwire: message type %d is %d bytes, more than the 65535 the header length can hold", msg[1], len(msg))
	}
	binary.BigEndian.PutUint16(msg[2:4], uint16(len(msg)))
	return nil
}

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }
func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
func appendU64(b []byte, v uint64) []byte {
	return append(b, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32), byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendZeros appends n zero bytes.
func appendZeros(b []byte, n int) []byte {
	for ; n > 0; n-- {
		b = append(b, 0)
	}
	return b
}

// pad8 returns the number of bytes that pad n up to a multiple of 8.
func pad8(n int) int { return (n+7)/8*8 - n }

// u16, u32, u64 read big-endian integers; callers check bounds.
func u16(b []byte) uint16 { return binary.BigEndian.Uint16(b) }
func u32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func u64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }
