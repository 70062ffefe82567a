package subscription

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// AddressPolicy decides where notifications may be sent. By default an
// endpoint must be https and resolve to a public address: loopback,
// private (RFC 1918, RFC 4193), link-local, carrier-grade NAT, unspecified
// and multicast addresses are refused, so that a subscription cannot make
// Signpost reach into its own network. A deployment allows chosen ranges
// (and plain http, for a test or an internal receiver) by configuration.
type AddressPolicy struct {
	// Allow lists address ranges allowed although they are not public
	// (serve --subscription-allow 10.1.2.0/24).
	Allow []netip.Prefix
	// AllowHTTP accepts http endpoints besides https.
	AllowHTTP bool
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// CheckIP reports why ip may not be sent to, or nil.
func (p AddressPolicy) CheckIP(ip netip.Addr) error {
	ip = ip.Unmap()
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return nil
		}
	}
	switch {
	case ip.IsLoopback(), ip.IsPrivate(), ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsUnspecified(),
		ip.IsMulticast(), ip.IsInterfaceLocalMulticast(), cgnat.Contains(ip):
		return fmt.Errorf("%s is a loopback, private, link-local or otherwise non-public address, which this deployment does not allow", ip)
	}
	return nil
}

// CheckURL checks an endpoint as written: its scheme, and its host when
// that is an address or a name for loopback ("localhost"). A host name is
// checked again by the sender against each address it resolves to, when it
// connects.
func (p AddressPolicy) CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return fmt.Errorf("%q: the endpoint must be https", raw)
		}
	default:
		return fmt.Errorf("%q: the endpoint must be https", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in the URL are not accepted; use channel.header", raw)
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.CheckIP(ip)
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return p.CheckIP(netip.MustParseAddr("127.0.0.1"))
	}
	return nil
}
