// Command ksi-proxy carries TCP between a rootless node's network namespace
// and the host's, past the node's network helper (pasta, slirp4netns), whose
// user-space TCP stalls on traffic leaving the node. It runs as the user in
// the host's namespace; sockets it needs inside the node are made there by
// children that entered the node's namespaces (package nsenter). Both legs
// are the kernel's TCP; splice(2) moves the bytes between them.
//
// egress: a listener made inside the node; iptables there REDIRECTs outbound
// TCP to it; the original destination (SO_ORIGINAL_DST) is dialled from the
// host.
//
// ingress: a listener on the host's address per forwarded NodePort; each
// connection is matched by one made inside the node (by the long-lived
// dialer child) to the node's own address and that port.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const usage = `ksi-proxy: TCP between a rootless node's namespace and the host's, past pasta

  ksi-proxy run --netns-pid PID [--egress-port 15001 (0: none)] [--control SOCK --bind HOSTADDR
                [--node-address 10.0.2.100]] [--ready-file F] [--dial-timeout 10s] [--max-conns 16384]
  ksi-proxy listen --port N --send-fd FD   (internal: inside the node's namespaces)
  ksi-proxy dialer --fd FD                 (internal: inside the node's namespaces)

The control socket takes one line per connection and answers one JSON line:
  set PORT...   forward exactly these host ports to the same ports of the node   -> {"PORT": "ok" | error}
  stats         -> {"active": n, "refused": n, "forwarded": [PORT...]}
`

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	log.SetPrefix("ksi-proxy: ")
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = cmdRun(os.Args[2:])
	case "listen":
		err = cmdListen(os.Args[2:])
	case "dialer":
		err = cmdDialer(os.Args[2:])
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		log.Print(err)
		os.Exit(1)
	}
}

func cmdRun(argv []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	pid := fs.Int("netns-pid", 0, "PID of a process in the node's user+network namespace (its init)")
	egressPort := fs.Int("egress-port", 15001, "port of the egress listener inside the node (0: no egress)")
	control := fs.String("control", "", "unix socket for NodePort forwards (none: no ingress)")
	bind := fs.String("bind", "", "host address the NodePort listeners bind to")
	nodeAddr := fs.String("node-address", "10.0.2.100", "the node's own address inside its namespace")
	ready := fs.String("ready-file", "", "written (with this process's pid) once everything listens")
	dialTimeout := fs.Duration("dial-timeout", 10*time.Second, "give up on a destination after this long")
	maxConns := fs.Int("max-conns", 16384, "connections in flight at most; more are reset")
	fs.Parse(argv)
	if *pid <= 0 {
		return fmt.Errorf("--netns-pid is required")
	}
	if *control != "" && net.ParseIP(*bind).To4() == nil {
		return fmt.Errorf("--bind must be the host's IPv4 address when --control is given")
	}
	p := &proxy{dialTimeout: *dialTimeout, slots: make(chan struct{}, *maxConns)}
	go p.tidy()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	failed := make(chan error, 2)
	if *egressPort > 0 {
		ln, err := listenInNode(*pid, *egressPort)
		if err != nil {
			return err
		}
		closers = append(closers, func() { ln.Close() })
		go func() { failed <- p.serveEgress(ln) }()
		log.Printf("egress: listening on port %d in the namespace of pid %d", *egressPort, *pid)
	}
	if *control != "" {
		d, err := startDialer(*pid, *dialTimeout)
		if err != nil {
			return err
		}
		in := &ingress{proxy: p, bind: *bind, node: *nodeAddr, dial: d, listeners: map[int]*net.TCPListener{}}
		ctl, err := in.serveControl(*control)
		if err != nil {
			d.close()
			return err
		}
		closers = append(closers, func() { ctl.Close(); os.Remove(*control); in.set(nil); d.close() })
		go func() { failed <- fmt.Errorf("the dialer in the node ended: %w", d.wait()) }()
		log.Printf("ingress: control socket %s, listeners on %s", *control, *bind)
	}
	if *ready != "" {
		if err := os.WriteFile(*ready, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
			return err
		}
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case s := <-stop:
		log.Printf("%v, stopping (%d connections in flight)", s, p.active.Load())
		return nil
	case err := <-failed:
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		return err
	}
}
