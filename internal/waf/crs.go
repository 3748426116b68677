package waf

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/rampart-edge/rampart/internal/config"
)

// Defaults of the owasp-crs managed rule group.
const (
	DefaultParanoiaLevel           = 1
	DefaultInboundAnomalyThreshold = 5
)

// scoreRuleID is the id of the rule Rampart appends after the CRS to read the final inbound
// anomaly score; it is outside the CRS's id ranges and never reported as a finding.
const scoreRuleID = 4999001

// crsGroup is a compiled owasp-crs managed rule group: one Coraza WAF with the embedded CRS.
// Compiling the CRS takes a noticeable fraction of a second and tens of megabytes, so groups with
// the same settings share one (see crsKey), and Close releases it when the config is replaced.
type crsGroup struct {
	waf      coraza.WAF
	detect   bool
	oversize string
	// key is the group's entry in Shared.crs, and refs the ACLs built with it that are not
	// closed yet (guarded by Shared.mu): the last one to close releases the compiled rules.
	key  string
	refs int
}

// crsResult is what the CRS found in one request.
type crsResult struct {
	ids         []int // logged rule ids, in match order
	score       int   // the inbound anomaly score (blocking paranoia level)
	interrupted bool  // the CRS would deny the request (score over the threshold, or a body error)
	field       string
	value       string
}

// crsKey identifies the settings that change the compiled rules.
func crsKey(g config.ManagedRuleGroupStatement, bodyLimit int, extra string) string {
	return fmt.Sprintf("%d|%d|%s|%d|%v|%v|%v|%s", g.ParanoiaLevel, g.InboundAnomalyThreshold, g.Mode, bodyLimit,
		g.Exclusions.RuleIDs, g.Exclusions.Tags, g.Exclusions.Fields, extra)
}

// crsDirectives builds the Coraza configuration of a group. Exclusions were validated by the
// config package (ids are numbers, tags and fields cannot contain quotes or spaces); they are
// checked again here because New may be called with an unvalidated config.
func crsDirectives(g config.ManagedRuleGroupStatement, bodyLimit int, extra string) (string, error) {
	engine := "On"
	if g.Mode == config.CRSModeDetect {
		engine = "DetectionOnly"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Include @coraza.conf-recommended
SecRuleEngine %s
SecRequestBodyAccess On
SecRequestBodyLimit %d
SecRequestBodyInMemoryLimit %d
SecRequestBodyLimitAction ProcessPartial
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
SecAction "id:900110,phase:1,pass,t:none,nolog,setvar:tx.inbound_anomaly_score_threshold=%d,setvar:tx.outbound_anomaly_score_threshold=4"
`, engine, bodyLimit, bodyLimit, g.ParanoiaLevel, g.InboundAnomalyThreshold)
	b.WriteString(extra)
	b.WriteString("\nInclude @owasp_crs/*.conf\n")
	for _, id := range g.Exclusions.RuleIDs {
		if id < 1 || id > 999999 {
			return "", fmt.Errorf("exclusions: rule id %d is out of range", id)
		}
		fmt.Fprintf(&b, "SecRuleRemoveById %d\n", id)
	}
	for _, tag := range g.Exclusions.Tags {
		if tag == "" || strings.ContainsAny(tag, "\"' \t\r\n\\,") {
			return "", fmt.Errorf("exclusions: invalid tag %q", tag)
		}
		fmt.Fprintf(&b, "SecRuleRemoveByTag %q\n", tag)
	}
	for _, f := range g.Exclusions.Fields {
		if f.RuleID < 1 || f.RuleID > 999999 || f.Field == "" || strings.ContainsAny(f.Field, "\"' \t\r\n,") {
			return "", fmt.Errorf("exclusions: invalid field exclusion %d %q", f.RuleID, f.Field)
		}
		fmt.Fprintf(&b, "SecRuleUpdateTargetById %d \"!%s\"\n", f.RuleID, f.Field)
	}
	fmt.Fprintf(&b, "SecAction \"id:%d,phase:2,pass,log,t:none,msg:'%%{tx.blocking_inbound_anomaly_score}'\"\n", scoreRuleID)
	return b.String(), nil
}

// managedRuleGroup compiles (or reuses) the group of s.
func (b *builder) managedRuleGroup(s config.ManagedRuleGroupStatement, at string) (*crsGroup, error) {
	if s.Name != config.ManagedGroupOWASPCRS {
		return nil, fmt.Errorf("%s.name: unknown managed rule group %q (this build has owasp-crs)", at, s.Name)
	}
	if s.ParanoiaLevel == 0 {
		s.ParanoiaLevel = DefaultParanoiaLevel
	}
	if s.ParanoiaLevel < 1 || s.ParanoiaLevel > 4 {
		return nil, fmt.Errorf("%s.paranoia_level: %d is not between 1 and 4", at, s.ParanoiaLevel)
	}
	if s.InboundAnomalyThreshold == 0 {
		s.InboundAnomalyThreshold = DefaultInboundAnomalyThreshold
	}
	if s.Mode == "" {
		s.Mode = config.CRSModeBlock
	}
	if s.Mode != config.CRSModeBlock && s.Mode != config.CRSModeDetect {
		return nil, fmt.Errorf("%s.mode: unknown mode %q (write block or detect)", at, s.Mode)
	}
	key := crsKey(s, b.bodyLimit, b.crsExtra)
	if g := b.shared.crs[key]; g != nil {
		g.refs++
		b.crs = append(b.crs, g)
		return g, nil
	}
	directives, err := crsDirectives(s, b.bodyLimit, b.crsExtra)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	w, err := coraza.NewWAF(coraza.NewWAFConfig().WithRootFS(coreruleset.FS).WithDirectives(directives))
	if err != nil {
		return nil, fmt.Errorf("%s: compile the CRS: %w", at, err)
	}
	g := &crsGroup{waf: w, detect: s.Mode == config.CRSModeDetect, oversize: b.oversize, key: key, refs: 1}
	b.shared.crs[key] = g
	b.crs = append(b.crs, g)
	return g, nil
}

// close releases the compiled rules.
func (g *crsGroup) close() {
	if c, ok := g.waf.(io.Closer); ok {
		_ = c.Close()
	}
}

// cond is the statement: in block mode it matches when the CRS would deny the request; in
// detect mode it matches when any CRS rule logged a finding (the rule then only counts).
func (g *crsGroup) cond(ec *evalCtx) bool {
	res, err := g.inspect(ec)
	if err != nil {
		ec.internalErr = err
		return false
	}
	ec.crs = res
	matched := res.interrupted
	if g.detect {
		matched = len(res.ids) > 0
	}
	if matched && res.field != "" {
		ec.hit = hit{field: res.field, value: res.value, set: true}
	}
	return matched
}

// inspect runs the request (line, headers and the inspected prefix of the body) through the CRS.
func (g *crsGroup) inspect(ec *evalCtx) (res *crsResult, err error) {
	r := ec.r
	tx := g.waf.NewTransaction()
	defer func() {
		tx.ProcessLogging()
		if cerr := tx.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("owasp-crs: close transaction: %w", cerr)
		}
	}()
	client, cport := splitHostPort(r.RemoteAddr)
	server, sport := "", 0
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		server, sport = splitHostPort(la.String())
	}
	tx.ProcessConnection(client, cport, server, sport)
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	tx.ProcessURI(uri, r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	// Go moves Host and Transfer-Encoding out of the header map; the CRS inspects both.
	if r.Host != "" || r.ProtoAtLeast(1, 1) {
		// An HTTP/1.1 request without Host never gets here (Go answers 400), so an empty
		// r.Host means an empty Host header, which the CRS reports (920290).
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(r.Host)
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	res = &crsResult{}
	if it := tx.ProcessRequestHeaders(); it == nil {
		if r.Body != nil && r.Body != http.NoBody {
			ec.readBody()
			if ec.bodyErr != nil {
				return nil, ec.bodyErr
			}
			if ec.oversize && g.oversize == config.OversizeMatch {
				res.interrupted = true
				res.field, res.value = "body", "(body over the inspection limit)"
			}
			if len(ec.body) > 0 && !(ec.oversize && g.oversize == config.OversizeNoMatch) {
				if _, _, err := tx.WriteRequestBody(ec.body); err != nil {
					return nil, fmt.Errorf("owasp-crs: write body: %w", err)
				}
			}
		}
		if _, err := tx.ProcessRequestBody(); err != nil {
			return nil, fmt.Errorf("owasp-crs: process body: %w", err)
		}
	}
	if tx.IsInterrupted() {
		res.interrupted = true
	}
	for _, mr := range tx.MatchedRules() {
		id := mr.Rule().ID()
		if l, ok := mr.(interface{ Log() bool }); ok && !l.Log() {
			continue
		}
		if id == scoreRuleID {
			res.score, _ = strconv.Atoi(strings.TrimSpace(mr.Message()))
			continue
		}
		if id == 949110 {
			if i := strings.LastIndex(mr.Message(), "Total Score: "); i >= 0 {
				res.score, _ = strconv.Atoi(strings.TrimRight(mr.Message()[i+len("Total Score: "):], ")"))
			}
		}
		res.ids = append(res.ids, id)
		if res.field == "" && id < 949000 {
			res.field, res.value = matchedData(mr)
		}
	}
	return res, nil
}

// matchedData names the variable of a rule's first match (ARGS:q, REQUEST_HEADERS:user-agent).
func matchedData(mr types.MatchedRule) (string, string) {
	mds := mr.MatchedDatas()
	if len(mds) == 0 {
		return "", ""
	}
	md := mds[0]
	name := md.Variable().Name()
	if md.Key() != "" {
		name += ":" + md.Key()
	}
	return name, md.Value()
}

func splitHostPort(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
