// Package plainmesh carries whole GSO super-packets (virtio_net_hdr + IP packet, as a TUN opened with
// IFF_VNET_HDR reads them) between hosts as runs of UDP datagrams, unencrypted: one UDP_SEGMENT send
// per super-packet, rebuilt from UDP_GRO on the far side. Every datagram starts with a header that carries
// the job's tag (datagrams without it are dropped), the super-packet's sequence number, and the
// datagram's place in it; a super-packet whose datagrams do not arrive complete and in order is dropped
// whole (TCP sends it again).
package plainmesh

import (
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"sync/atomic"
)

const (
	HeaderLen = 16
	TagLen    = 8
	// MaxSegments bounds the datagrams of one super-packet: the kernel's UDP_MAX_SEGMENTS is 64 on older
	// kernels; a 64 KiB super-packet at the smallest segment this package accepts fits.
	MaxSegments = 64
	// MaxPacket is the largest super-packet carried: a virtio_net_hdr and a 64 KiB IP packet.
	MaxPacket = 10 + 65535
)

var (
	ErrTooLarge   = errors.New("plainmesh: packet larger than the segments can carry")
	ErrBadSegment = errors.New("plainmesh: segment size out of range")
)

// Tag is the job's mark on every datagram (derived from the job's secret by the caller).
type Tag [TagLen]byte

// Header of one datagram: tag | seq (4) | index (1) | count (1) | reserved (2).
type Header struct {
	Seq   uint32
	Index uint8
	Count uint8
}

func (h Header) put(b []byte, tag *Tag) {
	copy(b[:TagLen], tag[:])
	binary.BigEndian.PutUint32(b[8:12], h.Seq)
	b[12], b[13], b[14], b[15] = h.Index, h.Count, 0, 0
}

// Parse reads a datagram's header; ok is false when the tag is not the job's or the fields are impossible.
func Parse(b []byte, tag *Tag) (h Header, ok bool) {
	if len(b) <= HeaderLen || subtle.ConstantTimeCompare(b[:TagLen], tag[:]) != 1 {
		return h, false
	}
	h = Header{Seq: binary.BigEndian.Uint32(b[8:12]), Index: b[12], Count: b[13]}
	return h, h.Count > 0 && h.Count <= MaxSegments && h.Index < h.Count
}

// Segments returns how many datagrams of `segment` bytes (header included) carry n bytes.
func Segments(n, segment int) int {
	payload := segment - HeaderLen
	return (n + payload - 1) / payload
}

// Reassembler rebuilds super-packets from one peer's datagrams, in the order they arrive.
type Reassembler struct {
	tag   *Tag
	buf   []byte
	n     int
	seq   uint32
	next  uint8 // index expected next; 0: no packet under way
	count uint8
	// Read by other goroutines (a status request) while Add runs.
	Dropped atomic.Uint64 // super-packets given up (a datagram lost, reordered or foreign)
	Foreign atomic.Uint64 // datagrams without the job's tag or with impossible fields
}

func NewReassembler(tag *Tag) *Reassembler {
	return &Reassembler{tag: tag, buf: make([]byte, MaxPacket)}
}

// Add takes one datagram; it returns the complete super-packet when this datagram ended one (valid until
// the next call).
func (r *Reassembler) Add(d []byte) []byte {
	h, ok := Parse(d, r.tag)
	if !ok {
		r.Foreign.Add(1)
		return nil
	}
	body := d[HeaderLen:]
	if h.Index == 0 {
		if r.next != 0 {
			r.Dropped.Add(1) // the previous one never completed
		}
		r.seq, r.count, r.n, r.next = h.Seq, h.Count, 0, 0
	} else if r.next == 0 || h.Seq != r.seq || h.Index != r.next || h.Count != r.count {
		if r.next != 0 {
			r.Dropped.Add(1)
		}
		r.next = 0
		return nil
	}
	if r.n+len(body) > len(r.buf) {
		r.Dropped.Add(1)
		r.next = 0
		return nil
	}
	r.n += copy(r.buf[r.n:], body)
	r.next = h.Index + 1
	if r.next == r.count {
		r.next = 0
		return r.buf[:r.n]
	}
	return nil
}

// Vectors cuts packet into datagrams of `segment` bytes (the last may be shorter), without copying it:
// for each datagram its header (written into headers, HeaderLen bytes per datagram) and its slice of
// packet, appended to iov in order, ready for one sendmsg with UDP_SEGMENT = segment. It returns iov and
// the number of datagrams.
func Vectors(iov [][]byte, headers, packet []byte, segment int, seq uint32, tag *Tag) ([][]byte, int, error) {
	if segment <= HeaderLen || segment > 65507 {
		return iov, 0, ErrBadSegment
	}
	count := Segments(len(packet), segment)
	if count > MaxSegments || len(packet) > MaxPacket || len(packet) == 0 || len(headers) < count*HeaderLen {
		return iov, 0, ErrTooLarge
	}
	payload := segment - HeaderLen
	for i := 0; i < count; i++ {
		h := headers[i*HeaderLen : (i+1)*HeaderLen]
		Header{Seq: seq, Index: uint8(i), Count: uint8(count)}.put(h, tag)
		iov = append(iov, h, packet[i*payload:min((i+1)*payload, len(packet))])
	}
	return iov, count, nil
}
