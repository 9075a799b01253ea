package main

import (
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/ksi-multi/helpers/fdpass"
	"github.com/ksi-multi/helpers/nsenter"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// tunSpec describes the TUN interface to create inside the node's namespace.
type tunSpec struct {
	pid    int
	name   string
	mtu    int
	addrs  multiFlag
	routes multiFlag
	noVnet bool
}

func (s *tunSpec) register(fs *flag.FlagSet) {
	fs.IntVar(&s.pid, "netns-pid", 0, "PID of a process in the target user+network namespace (e.g. the node container's init)")
	fs.StringVar(&s.name, "name", "wg0", "TUN interface name inside the namespace")
	fs.IntVar(&s.mtu, "mtu", 1420, "MTU of the TUN interface")
	fs.Var(&s.addrs, "addr", "address/prefix to put on the interface (repeatable)")
	fs.Var(&s.routes, "route", "extra CIDR to route via the interface (repeatable)")
	fs.BoolVar(&s.noVnet, "no-vnet-hdr", false, "benchmarking only: open the TUN without IFF_VNET_HDR (no GSO/GRO)")
}

func (s *tunSpec) args() []string {
	a := []string{"--netns-pid", strconv.Itoa(s.pid), "--name", s.name, "--mtu", strconv.Itoa(s.mtu)}
	for _, x := range s.addrs {
		a = append(a, "--addr", x)
	}
	for _, x := range s.routes {
		a = append(a, "--route", x)
	}
	if s.noVnet {
		a = append(a, "--no-vnet-hdr")
	}
	return a
}

// cmdOpenTun: "ksi-wg open-tun --netns-pid PID ... (--send-to SOCK | --send-fd N)".
// The outer invocation re-executes itself so that the namespaces are entered
// before the Go runtime starts (package nsenter); the inner invocation
// creates and configures the TUN and sends its fd away.
func cmdOpenTun(argv []string) error {
	fs := flag.NewFlagSet("open-tun", flag.ExitOnError)
	var spec tunSpec
	spec.register(fs)
	sendTo := fs.String("send-to", "", "unix socket path of a waiting 'ksi-wg up --tun-fd-socket'")
	sendFD := fs.Int("send-fd", -1, "already-connected unix socket fd to send the TUN fd over (used by 'up --netns-pid')")
	fs.Parse(argv)
	if spec.pid <= 0 {
		return fmt.Errorf("--netns-pid is required")
	}
	if (*sendTo == "") == (*sendFD < 0) {
		return fmt.Errorf("exactly one of --send-to or --send-fd is required")
	}
	if !nsenter.Entered() {
		if nsenter.Reexeced() { // re-executed but not switched: never re-exec again (no fork loop)
			return fmt.Errorf("namespace switch did not happen in the re-executed child")
		}
		return nsenter.Run(spec.pid, nil, append([]string{"open-tun"}, argv...)...)
	}
	return openTunInNS(&spec, *sendTo, *sendFD)
}

// openTunInNS runs inside the target namespaces.
func openTunInNS(spec *tunSpec, sendTo string, sendFD int) error {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/net/tun: %w (it must be mode 0666 for unprivileged use)", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(spec.name)
	if err != nil {
		return err
	}
	// IFF_VNET_HDR: every packet carries a virtio_net_hdr; wireguard-go's
	// tun.initFromFlags sees it via TUNGETIFF and turns on TSO/USO + GRO.
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if spec.noVnet {
		flags &^= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		return fmt.Errorf("TUNSETIFF %s: %w", spec.name, err)
	}
	link, err := netlink.LinkByName(spec.name)
	if err != nil {
		return fmt.Errorf("lookup %s in namespace: %w", spec.name, err)
	}
	if err := netlink.LinkSetMTU(link, spec.mtu); err != nil {
		return fmt.Errorf("set mtu: %w", err)
	}
	for _, a := range spec.addrs {
		addr, err := netlink.ParseAddr(a)
		if err != nil {
			return fmt.Errorf("bad --addr %q: %w", a, err)
		}
		if err := netlink.AddrReplace(link, addr); err != nil {
			return fmt.Errorf("add address %s: %w", a, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("link up: %w", err)
	}
	for _, r := range spec.routes {
		_, dst, err := net.ParseCIDR(r)
		if err != nil {
			return fmt.Errorf("bad --route %q: %w", r, err)
		}
		if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}); err != nil {
			return fmt.Errorf("add route %s: %w", r, err)
		}
	}

	sock := sendFD
	if sendTo != "" {
		sock, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(sock)
		if err := unix.Connect(sock, &unix.SockaddrUnix{Name: sendTo}); err != nil {
			return fmt.Errorf("connect %s: %w", sendTo, err)
		}
	}
	return fdpass.Send(sock, fmt.Sprintf("name=%s\nmtu=%d\n", spec.name, spec.mtu), fd)
}

// recvTunFD receives the TUN fd plus its name/mtu payload from a connected unix socket.
func recvTunFD(sock int) (fd int, name string, mtu int, err error) {
	fd, payload, err := fdpass.Recv(sock)
	if err != nil {
		return -1, "", 0, err
	}
	for _, l := range strings.Split(payload, "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "name":
			name = v
		case "mtu":
			mtu, _ = strconv.Atoi(v)
		}
	}
	return fd, name, mtu, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
