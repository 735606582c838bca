# docker.service's effective ExecStart without this task's own drop-in and runtime flag
systemctl cat docker.service | awk -v skip=/etc/systemd/system/docker.service.d/99-botlab-nvidia.conf '
/^# \// { path = substr($0, 3); next }
path == skip { next }
/^[ \t]*\[/ { section = $1; next }
section == "[Service]" && /^[ \t]*ExecStart[ \t]*=/ { sub(/^[ \t]*ExecStart[ \t]*=[ \t]*/, ""); start = $0 }
END { sub(/ --add-runtime=nvidia=\/usr\/bin\/nvidia-container-runtime/, "", start); if (start == "") exit 1; print start }'
