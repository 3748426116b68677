package topology

import (
	"net/netip"
	"testing"
)

func TestAppSource(t *testing.T) {
	tests := []struct {
		listen string
		want   netip.Addr
	}{
		{"127.0.0.2:9001", netip.MustParseAddr("127.0.0.2")},
		{"[::1]:9001", netip.MustParseAddr("::1")},
		{"0.0.0.0:9001", netip.Addr{}},
		{"[::]:9001", netip.Addr{}},
		{":9001", netip.Addr{}},
		{"app.internal:9001", netip.Addr{}},
		{"garbage", netip.Addr{}},
	}
	for _, tt := range tests {
		if got := appSource(tt.listen); got != tt.want {
			t.Errorf("appSource(%q) = %v, want %v", tt.listen, got, tt.want)
		}
	}
}
