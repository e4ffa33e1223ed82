package ofbench

import (
	"encoding/binary"
	"fmt"
	"io"

	of "github.com/netrack/openflow"
	"github.com/netrack/openflow/ofp"
)

// reply appends a reply of type t with the request's xid.
func (s *emuSwitch) reply(t of.Type, req []byte, body io.WriterTo) error {
	out, err := encode(s.out, t, binary.BigEndian.Uint32(req[4:]), body)
	if err != nil {
		return fmt.Errorf("reply to %v: %w", of.Type(req[1]), err)
	}
	s.out = out
	return nil
}

// replyError appends an OFPT_ERROR naming the offending request.
func (s *emuSwitch) replyError(req []byte, t ofp.ErrType, c ofp.ErrCode) error {
	s.logf("answering %v (xid %#x, %d bytes) with error %v", of.Type(req[1]),
		binary.BigEndian.Uint32(req[4:]), len(req), ofp.Error{Type: t, Code: c})
	return s.reply(of.TypeError, req, errorBody(t, c, req))
}

// handleControl answers everything but flow-mods and packet-outs, so any
// controller's handshake completes: the switch side of OpenFlow 1.3.5
// sections 6.3 (connection setup), 7.3 (controller-to-switch messages)
// and 7.5 (symmetric messages). Requests this emulation cannot serve get
// OFPET_BAD_REQUEST.
func (s *emuSwitch) handleControl(t of.Type, m []byte) error {
	if t == of.TypeHello {
		if s.helloSeen {
			return nil
		}
		s.helloSeen = true
		ok, err := helloAccepts(m)
		if err != nil {
			_ = s.reply(of.TypeError, m, errorBody(ofp.ErrTypeHelloFailed, ofp.ErrCodeHelloFailedIncompatible, m))
			_, _ = s.conn.Write(s.out)
			return fmt.Errorf("%w: hello: %v", errMalformed, err)
		}
		if !ok {
			_ = s.reply(of.TypeError, m, errorBody(ofp.ErrTypeHelloFailed, ofp.ErrCodeHelloFailedIncompatible, m))
			_, _ = s.conn.Write(s.out)
			return fmt.Errorf("controller does not offer OpenFlow 1.3 (hello version %#x)", m[0])
		}
		s.logf("hello from controller, version %#x", m[0])
		return nil
	}
	if m[0] != ofpVersion {
		return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadVersion)
	}
	body := m[ofpHeaderLen:]
	switch t {
	case of.TypeError:
		s.ctr.ctrlErrors.Add(1)
		var typ, code uint16
		if len(body) >= 4 {
			typ, code = binary.BigEndian.Uint16(body), binary.BigEndian.Uint16(body[2:])
		}
		s.logf("controller sent error type %d code %d (xid %#x)", typ, code, binary.BigEndian.Uint32(m[4:]))
		return nil
	case of.TypeEchoRequest:
		return s.reply(of.TypeEchoReply, m, rawBody(body))
	case of.TypeEchoReply, of.TypeSetConfig, of.TypeGroupMod, of.TypePortMod,
		of.TypeTableMod, of.TypeSetAsync, of.TypeMeterMod:
		// Accepted silently: a switch answers these only on failure.
		return nil
	case of.TypeFeaturesRequest:
		if err := s.reply(of.TypeFeaturesReply, m, featuresBody(s.dpid, s.cfg.Buffered)); err != nil {
			return err
		}
		if !s.featuresReplied {
			s.logf("features reply sent")
		}
		s.featuresReplied = true
		return nil
	case of.TypeGetConfigRequest:
		return s.reply(of.TypeGetConfigReply, m, &ofp.SwitchConfig{MissSendLength: 0xffff})
	case of.TypeBarrierRequest:
		return s.reply(of.TypeBarrierReply, m, nil)
	case of.TypeMultipartRequest:
		return s.handleMultipart(m)
	case of.TypeRoleRequest:
		if len(body) < 16 {
			return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestLen)
		}
		role := append([]byte(nil), body[:16]...)
		if binary.BigEndian.Uint32(role) == uint32(ofp.ControllerRoleNoChange) {
			binary.BigEndian.PutUint32(role, uint32(ofp.ControllerRoleEqual))
		}
		return s.reply(of.TypeRoleReply, m, rawBody(role))
	case of.TypeGetAsyncRequest:
		return s.reply(of.TypeGetAsyncReply, m, &ofp.AsyncConfig{
			PacketInMask:    [2]uint32{0x7, 0},
			PortStatusMask:  [2]uint32{0x7, 0x7},
			FlowRemovedMask: [2]uint32{0xf, 0},
		})
	case of.TypeQueueGetConfigRequest:
		if len(body) < 8 {
			return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestLen)
		}
		// ofp_queue_get_config_reply: the port, padding, no queues.
		return s.reply(of.TypeQueueGetConfigReply, m, rawBody(append(append([]byte(nil), body[:4]...), 0, 0, 0, 0)))
	case of.TypeExperiment:
		return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadExperimenter)
	}
	return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadType)
}

// handleMultipart answers multipart requests (section 7.3.5): description,
// port description and aggregate statistics with our figures, the other
// statistics with empty replies (no flows, tables, groups, meters or
// queues are emulated), anything else with OFPBRC_BAD_MULTIPART.
func (s *emuSwitch) handleMultipart(m []byte) error {
	body := m[ofpHeaderLen:]
	if len(body) < 8 {
		return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestLen)
	}
	mt := ofp.MultipartType(binary.BigEndian.Uint16(body))
	head := &ofp.MultipartReply{Type: mt}
	switch mt {
	case ofp.MultipartTypeDescription:
		return s.reply(of.TypeMultipartReply, m, bodies{head, &ofp.Description{
			Manufacturer: "Skyvisor",
			Hardware:     "ofbench emulated switch",
			Software:     "ofbench",
			SerialNum:    fmt.Sprintf("%d", s.idx+1),
			Datapath:     s.name(),
		}})
	case ofp.MultipartTypePortDescription:
		ports := make([]uint32, s.cfg.Ports)
		for i := range ports {
			ports[i] = uint32(i + 1)
		}
		if s.fab != nil {
			ports = s.fab.ports
		}
		return s.reply(of.TypeMultipartReply, m, portDescBody(s.idx, ports))
	case ofp.MultipartTypeAggregate:
		return s.reply(of.TypeMultipartReply, m, bodies{head, &ofp.AggregateStats{}})
	case ofp.MultipartTypeFlow, ofp.MultipartTypeTable, ofp.MultipartTypePortStats,
		ofp.MultipartTypeQueue, ofp.MultipartTypeGroup, ofp.MultipartTypeGroupDescription,
		ofp.MultipartTypeMeter, ofp.MultipartTypeMeterConfig, ofp.MultipartTypeTableFeatures:
		return s.reply(of.TypeMultipartReply, m, head)
	}
	return s.replyError(m, ofp.ErrTypeBadRequest, ofp.ErrCodeBadRequestBadMultipart)
}
