package main

// "ksi-wg plain": the unencrypted mesh for trusted cluster networks. The same split as "up" (TUN inside
// the node, UDP socket on the host as the user), but each GSO super-packet the TUN hands over crosses as
// one UDP_SEGMENT send and is rebuilt from UDP_GRO on the far side (package plainmesh): per byte a copy,
// no cipher, no per-packet path.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ksi-multi/helpers/plainmesh"
	"golang.org/x/sys/unix"
)

const vnetHdrLen = 10

type peerStats struct {
	rxBytes, txBytes, rxPackets, txPackets, lastRx atomic.Int64
}

type plainMesh struct {
	tun      int
	udp      int
	segment  int
	tag      plainmesh.Tag
	peers    *plainmesh.Peers
	addrs    []unix.Sockaddr
	stats    []peerStats
	noPeer   atomic.Int64 // TUN packets for no peer's range
	foreign  atomic.Int64 // datagrams from no peer's endpoint
	tunError atomic.Int64 // rebuilt packets the TUN refused
	// per peer: datagrams without the job's tag, super-packets that did not arrive whole
	reassemblers []*plainmesh.Reassembler
}

func cmdPlain(argv []string) error {
	fs := flag.NewFlagSet("plain", flag.ExitOnError)
	var spec tunSpec
	spec.register(fs)
	status := fs.String("status", "", "unix socket (0600) that answers with the mesh's state as JSON")
	listenAddr := fs.String("listen-address", "", "the host's address to send and receive on")
	listenPort := fs.Int("listen-port", 0, "UDP port")
	secretFile := fs.String("secret-file", "", "the job's secret: every datagram carries a tag derived from it")
	pathMTU := fs.Int("path-mtu", 1500, "MTU of the path between the hosts (datagrams never exceed it)")
	var peerArgs multiFlag
	fs.Var(&peerArgs, "peer", "NAME=ADDR:PORT=CIDR[,CIDR...] (repeatable)")
	fs.Parse(argv)
	if *status == "" || *listenAddr == "" || *listenPort <= 0 || *secretFile == "" || spec.pid <= 0 {
		return fmt.Errorf("--status, --listen-address, --listen-port, --secret-file and --netns-pid are required")
	}
	var list []plainmesh.Peer
	for _, a := range peerArgs {
		p, err := plainmesh.ParsePeer(a)
		if err != nil {
			return err
		}
		list = append(list, p)
	}
	peers, err := plainmesh.NewPeers(list)
	if err != nil {
		return err
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	local, err := netip.ParseAddr(*listenAddr)
	if err != nil {
		return fmt.Errorf("--listen-address: %w", err)
	}
	m := &plainMesh{peers: peers, stats: make([]peerStats, peers.Len())}
	for range peers.List() {
		m.reassemblers = append(m.reassemblers, plainmesh.NewReassembler(&m.tag))
	}
	mac := hmac.New(sha256.New, []byte(strings.TrimSpace(string(secret))))
	mac.Write([]byte("ksi-multi plain mesh tag"))
	copy(m.tag[:], mac.Sum(nil))
	outer := 28 // IPv4 + UDP
	if local.Is6() && !local.Is4In6() {
		outer = 48
	}
	m.segment = *pathMTU - outer
	if m.segment < 576-outer {
		return fmt.Errorf("--path-mtu %d is too small", *pathMTU)
	}
	for _, p := range peers.List() {
		m.addrs = append(m.addrs, sockaddr(p.Endpoint))
	}
	if m.udp, err = openUDP(local, *listenPort); err != nil {
		return err
	}
	var name string
	var mtu int
	if m.tun, name, mtu, err = spawnOpenTun(&spec); err != nil {
		return err
	}
	offloads := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	if err := unix.IoctlSetInt(m.tun, unix.TUNSETOFFLOAD, offloads); err != nil {
		return fmt.Errorf("tun offloads: %w (the TUN must be opened with IFF_VNET_HDR)", err)
	}
	if err := unix.SetNonblock(m.tun, false); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ksi-wg plain: tun %s mtu %d, udp %s:%d, segments of %d bytes, %d peer(s)\n",
		name, mtu, local, *listenPort, m.segment, peers.Len())
	ln, err := listenStatus(*status, m)
	if err != nil {
		return err
	}
	defer os.Remove(*status)
	defer ln.Close()
	errs := make(chan error, 2)
	go func() { errs <- m.fromTUN() }()
	go func() { errs <- m.fromPeers() }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return nil
	case err := <-errs:
		return err
	}
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() || ap.Addr().Is4In6() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().Unmap().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}

func openUDP(local netip.Addr, port int) (int, error) {
	family := unix.AF_INET
	if local.Is6() && !local.Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for _, o := range [][2]int{{unix.SOL_SOCKET, unix.SO_RCVBUF}, {unix.SOL_SOCKET, unix.SO_SNDBUF}} {
		unix.SetsockoptInt(fd, o[0], o[1], 8<<20) // as much as the host allows (rmem_max)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_UDP, unix.UDP_GRO, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("UDP_GRO: %w", err)
	}
	if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(local, uint16(port)))); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("udp %s:%d: %w", local, port, err)
	}
	return fd, nil
}

// fromTUN: each super-packet to the peer that serves its destination, in UDP_SEGMENT runs of at most
// one maximum UDP datagram each; headers and the packet's own bytes go out as separate buffers (no copy).
func (m *plainMesh) fromTUN() error {
	buf := make([]byte, plainmesh.MaxPacket)
	headers := make([]byte, plainmesh.MaxSegments*plainmesh.HeaderLen)
	iov := make([][]byte, 0, 2*plainmesh.MaxSegments)
	perSend := min(65507/m.segment, plainmesh.MaxSegments)
	oob := segmentCmsg(m.segment)
	var seq uint32
	for {
		n, err := unix.Read(m.tun, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return fmt.Errorf("tun read: %w", err)
		}
		if n <= vnetHdrLen {
			continue
		}
		i := m.peers.To(buf[vnetHdrLen:n])
		if i < 0 {
			m.noPeer.Add(1)
			continue
		}
		seq++
		var count int
		iov, count, err = plainmesh.Vectors(iov[:0], headers, buf[:n], m.segment, seq, &m.tag)
		if err != nil {
			m.noPeer.Add(1)
			continue
		}
		for first := 0; first < count; first += perSend {
			last := min(first+perSend, count)
			var cmsg []byte
			if last-first > 1 {
				cmsg = oob
			}
			if err := sendBuffers(m.udp, iov[2*first:2*last], cmsg, m.addrs[i]); err != nil && err != unix.ECONNREFUSED {
				return fmt.Errorf("udp send to %s: %w", m.peers.At(i).Endpoint, err)
			}
		}
		m.stats[i].txBytes.Add(int64(n))
		m.stats[i].txPackets.Add(1)
	}
}

// segmentCmsg is the UDP_SEGMENT control message: the kernel cuts the buffers into datagrams of `segment`.
func segmentCmsg(segment int) []byte {
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	*(*uint16)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = uint16(segment)
	return oob
}

func sendBuffers(fd int, iov [][]byte, oob []byte, to unix.Sockaddr) error {
	for {
		_, err := unix.SendmsgBuffers(fd, iov, oob, to, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// fromPeers: datagrams (coalesced by UDP_GRO) from known peers with the job's tag, rebuilt into
// super-packets and written to the TUN whole, from where they were read (one writev, no copy in between).
func (m *plainMesh) fromPeers() error {
	buf := make([]byte, 1<<17)
	oob := make([]byte, unix.CmsgSpace(4)*2)
	for {
		n, oobn, _, from, err := unix.Recvmsg(m.udp, buf, oob, 0)
		if err != nil {
			if err == unix.EINTR || err == unix.ECONNREFUSED {
				continue
			}
			return fmt.Errorf("udp receive: %w", err)
		}
		i := m.peers.From(addrPort(from))
		if i < 0 {
			m.foreign.Add(1)
			continue
		}
		size := groSize(oob[:oobn])
		if size <= 0 {
			size = n
		}
		r := m.reassemblers[i]
		for off := 0; off < n; off += size {
			pkt := r.Add(buf[off:min(off+size, n)])
			if pkt == nil {
				continue
			}
			written, err := unix.Writev(m.tun, pkt)
			if err != nil {
				m.tunError.Add(1)
				continue
			}
			m.stats[i].rxBytes.Add(int64(written))
			m.stats[i].rxPackets.Add(1)
			m.stats[i].lastRx.Store(time.Now().Unix())
		}
		r.Hold() // the next read reuses buf
	}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// groSize is the segment size UDP_GRO reports for a coalesced read (0: a single datagram).
func groSize(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, c := range msgs {
		if c.Header.Level == unix.SOL_UDP && c.Header.Type == unix.UDP_GRO && len(c.Data) >= 4 {
			return int(*(*int32)(unsafe.Pointer(&c.Data[0])))
		}
	}
	return 0
}

type plainPeerState struct {
	Name      string `json:"name"`
	Endpoint  string `json:"endpoint"`
	RxBytes   int64  `json:"rx_bytes"`
	TxBytes   int64  `json:"tx_bytes"`
	RxPackets int64  `json:"rx_packets"`
	TxPackets int64  `json:"tx_packets"`
	LastRx    int64  `json:"last_rx"`
}

type plainState struct {
	Peers    []plainPeerState `json:"peers"`
	NoPeer   int64            `json:"no_peer"`
	Foreign  int64            `json:"foreign"`
	BadTag   int64            `json:"bad_tag"`
	Dropped  int64            `json:"dropped"`
	TunError int64            `json:"tun_errors"`
}

func (m *plainMesh) state() plainState {
	s := plainState{NoPeer: m.noPeer.Load(), Foreign: m.foreign.Load(), TunError: m.tunError.Load()}
	for _, r := range m.reassemblers {
		s.BadTag += int64(r.Foreign.Load())
		s.Dropped += int64(r.Dropped.Load())
	}
	for i, p := range m.peers.List() {
		st := &m.stats[i]
		s.Peers = append(s.Peers, plainPeerState{Name: p.Name, Endpoint: p.Endpoint.String(),
			RxBytes: st.rxBytes.Load(), TxBytes: st.txBytes.Load(), RxPackets: st.rxPackets.Load(),
			TxPackets: st.txPackets.Load(), LastRx: st.lastRx.Load()})
	}
	return s
}

func listenStatus(path string, m *plainMesh) (net.Listener, error) {
	os.Remove(path)
	old := unix.Umask(0o077)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			json.NewEncoder(c).Encode(m.state())
			c.Close()
		}
	}()
	return ln, nil
}

// cmdPlainShow: "ksi-wg plain-show --status SOCK" prints the state as JSON.
func cmdPlainShow(argv []string) error {
	fs := flag.NewFlagSet("plain-show", flag.ExitOnError)
	status := fs.String("status", "", "the status socket of a running 'ksi-wg plain'")
	fs.Parse(argv)
	c, err := net.DialTimeout("unix", *status, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	var s plainState
	if err := json.NewDecoder(c).Decode(&s); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(s)
}
