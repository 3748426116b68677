# nginx_conf N LISTEN UPSTREAM: writes the config of one nginx hop of the benchmark chains under
# $work/nginxN (one worker, no master, access log off, upstream keepalive) and prints its path.
# Sourced by bench/chain.sh and bench/syscalls.sh, so that both measure the same nginx.
nginx_conf() {
	mkdir -p "$work/nginx$1"
	local user=""
	[ "$(id -u)" -eq 0 ] && user="user root;"
	cat >"$work/nginx$1/nginx.conf" <<EOF
$user
daemon off;
master_process off;
worker_processes 1;
pid $work/nginx$1/nginx.pid;
error_log $work/nginx$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx$1/body;
  proxy_temp_path $work/nginx$1/proxy;
  fastcgi_temp_path $work/nginx$1/fastcgi;
  uwsgi_temp_path $work/nginx$1/uwsgi;
  scgi_temp_path $work/nginx$1/scgi;
  upstream next { server $3; keepalive 256; }
  server {
    listen $2;
    location / {
      proxy_pass http://next;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
	echo "$work/nginx$1/nginx.conf"
}
