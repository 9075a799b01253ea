package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ksi-multi/helpers/fdpass"
	"github.com/ksi-multi/helpers/nsenter"
	"golang.org/x/sys/unix"
)

// cmdDialer runs inside the node's namespaces for as long as its parent
// lives: each request "ID HOST:PORT" on the SOCK_SEQPACKET socket --fd is
// answered with "ID ok" and the connected socket, or "ID err TEXT".
func cmdDialer(argv []string) error {
	fs := flag.NewFlagSet("dialer", flag.ExitOnError)
	sock := fs.Int("fd", -1, "SOCK_SEQPACKET socket to the parent")
	timeout := fs.Duration("timeout", 10*time.Second, "connect timeout")
	fs.Parse(argv)
	if !nsenter.Entered() {
		return fmt.Errorf("dialer runs only inside a node's namespaces (started by run)")
	}
	for {
		_, req, err := fdpass.RecvMaybe(*sock)
		if err != nil {
			return nil // the parent is gone: so are we
		}
		id, addr, _ := strings.Cut(req, " ")
		go func() {
			c, err := net.DialTimeout("tcp4", addr, *timeout)
			if err != nil {
				fdpass.SendText(*sock, id+" err "+err.Error())
				return
			}
			f, err := c.(*net.TCPConn).File()
			c.Close()
			if err != nil {
				fdpass.SendText(*sock, id+" err "+err.Error())
				return
			}
			fdpass.Send(*sock, id+" ok", int(f.Fd()))
			f.Close()
		}()
	}
}

// dialer is the host side of the node's dialer child.
type dialer struct {
	sock    *os.File
	cmd     *exec.Cmd
	timeout time.Duration
	mu      sync.Mutex
	next    uint64
	waiting map[uint64]chan reply
	done    chan error
}

type reply struct {
	fd  int
	err error
}

func startDialer(pid int, timeout time.Duration) (*dialer, error) {
	mine, theirs, err := socketpair(unix.SOCK_SEQPACKET)
	if err != nil {
		return nil, err
	}
	cmd, err := nsenter.Command(pid, "dialer", "--fd", "3", "--timeout", timeout.String())
	if err != nil {
		return nil, err
	}
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	theirs.Close()
	d := &dialer{sock: mine, cmd: cmd, timeout: timeout, waiting: map[uint64]chan reply{}, done: make(chan error, 1)}
	go func() { d.done <- cmd.Wait() }()
	go d.read()
	return d, nil
}

func (d *dialer) read() {
	for {
		fd, msg, err := fdpass.RecvMaybe(int(d.sock.Fd()))
		if err != nil {
			return
		}
		idText, rest, _ := strings.Cut(msg, " ")
		id, _ := strconv.ParseUint(idText, 10, 64)
		r := reply{fd: fd}
		if fd < 0 {
			r.err = fmt.Errorf("%s", strings.TrimPrefix(rest, "err "))
		}
		d.mu.Lock()
		ch := d.waiting[id]
		delete(d.waiting, id)
		d.mu.Unlock()
		if ch == nil { // its caller gave up
			if fd >= 0 {
				unix.Close(fd)
			}
			continue
		}
		ch <- r
	}
}

// Dial connects to addr from inside the node.
func (d *dialer) Dial(addr string) (*net.TCPConn, error) {
	ch := make(chan reply, 1)
	d.mu.Lock()
	d.next++
	id := d.next
	d.waiting[id] = ch
	d.mu.Unlock()
	if err := fdpass.SendText(int(d.sock.Fd()), strconv.FormatUint(id, 10)+" "+addr); err != nil {
		d.forget(id)
		return nil, err
	}
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		f := os.NewFile(uintptr(r.fd), "node-conn")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return nil, err
		}
		return c.(*net.TCPConn), nil
	case <-time.After(d.timeout + 5*time.Second):
		d.forget(id)
		return nil, fmt.Errorf("dial %s in the node: no answer", addr)
	}
}

func (d *dialer) forget(id uint64) {
	d.mu.Lock()
	delete(d.waiting, id)
	d.mu.Unlock()
}

func (d *dialer) wait() error { return <-d.done }

func (d *dialer) close() {
	d.sock.Close() // the child reads EOF and exits
	d.cmd.Process.Kill()
}
