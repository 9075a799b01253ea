package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/ksi-multi/helpers/fdpass"
	"github.com/ksi-multi/helpers/nsenter"
	"golang.org/x/sys/unix"
)

// cmdListen runs inside the node's user and network namespaces: it makes a
// listening TCP socket on every address of the node and sends it away.
func cmdListen(argv []string) error {
	fs := flag.NewFlagSet("listen", flag.ExitOnError)
	port := fs.Int("port", 0, "TCP port inside the node")
	sendFD := fs.Int("send-fd", -1, "connected unix socket to send the listener over")
	fs.Parse(argv)
	if !nsenter.Entered() {
		return fmt.Errorf("listen runs only inside a node's namespaces (started by run)")
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: *port}); err != nil {
		return fmt.Errorf("bind port %d in the node: %w", *port, err)
	}
	if err := unix.Listen(fd, 4096); err != nil {
		return err
	}
	return fdpass.Send(*sendFD, "port="+strconv.Itoa(*port), fd)
}

// listenInNode starts `ksi-proxy listen` inside pid's namespaces and returns
// the listener it made there.
func listenInNode(pid, port int) (*net.TCPListener, error) {
	mine, theirs, err := socketpair(unix.SOCK_STREAM)
	if err != nil {
		return nil, err
	}
	defer mine.Close()
	err = nsenter.Run(pid, []*os.File{theirs}, "listen", "--port", strconv.Itoa(port), "--send-fd", "3")
	theirs.Close()
	if err != nil {
		return nil, err
	}
	fd, _, err := fdpass.Recv(int(mine.Fd()))
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "node-listener")
	defer f.Close()
	ln, err := net.FileListener(f)
	if err != nil {
		return nil, err
	}
	return ln.(*net.TCPListener), nil
}

func (p *proxy) serveEgress(ln *net.TCPListener) error {
	return p.accept(ln, func(c *net.TCPConn) {
		dst, err := originalDst(c)
		if err != nil {
			p.refuse(c, fmt.Errorf("egress: no original destination: %w", err))
			return
		}
		up, err := net.DialTimeout("tcp4", dst.String(), p.dialTimeout)
		if err != nil {
			p.refuse(c, fmt.Errorf("egress: %w", err))
			return
		}
		splice(c, up.(*net.TCPConn))
	})
}

// originalDst is where the connection was going before iptables REDIRECTed
// it: SO_ORIGINAL_DST, answered from the conntrack of the socket's own (the
// node's) network namespace.
func originalDst(c *net.TCPConn) (*net.TCPAddr, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var addr *unix.IPv6Mreq // 20 bytes: room for the sockaddr_in the kernel writes
	var serr error
	err = raw.Control(func(fd uintptr) {
		addr, serr = unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	b := addr.Multiaddr
	return &net.TCPAddr{IP: net.IPv4(b[4], b[5], b[6], b[7]), Port: int(b[2])<<8 | int(b[3])}, nil
}

func socketpair(kind int) (mine, theirs *os.File, err error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, kind|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	return os.NewFile(uintptr(pair[0]), "fdsock"), os.NewFile(uintptr(pair[1]), "fdsock-child"), nil
}
