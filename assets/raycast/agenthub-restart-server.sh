#!/bin/bash

# Raycast script command: restart one of AgentHub's servers by name. Needs only bash and curl;
# AGENTHUB_URL and AGENTHUB_TOKEN from the environment.

# Required parameters:
# @raycast.schemaVersion 1
# @raycast.title Restart AgentHub Server
# @raycast.mode compact

# Optional parameters:
# @raycast.icon 🔄
# @raycast.argument1 { "type": "text", "placeholder": "server" }
# @raycast.packageName AgentHub

# Documentation:
# @raycast.description Restart an MCP server supervised by AgentHub
# @raycast.author AgentHub

url=${AGENTHUB_URL:-http://127.0.0.1:9090}
url=${url%/}

# The token as a curl config line, read through a pipe: never on a command line, where ps shows it.
auth() {
  [[ -n $AGENTHUB_TOKEN ]] && printf 'header = "Authorization: Bearer %s"\n' "${AGENTHUB_TOKEN//\"/\\\"}"
  return 0
}

# The first string value of "KEY" in compact JSON (escapes left as they are: a message).
json_string() {
  local rest=${1#*\"$2\":\"}
  [[ $rest == "$1" ]] && return 1
  printf '%s' "${rest%%\"*}"
}

# A path segment, percent-encoded.
encode() {
  local s=$1 out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=$c ;;
    esac
  done
  printf '%s' "$out"
}

if [[ -z $1 ]]; then
  echo "Give a server name."
  exit 1
fi
answer=$(curl -sS --max-time 60 -X POST -K <(auth) -w $'\n%{http_code}' \
  "$url/servers/$(encode "$1")/restart" 2>/dev/null) || {
  echo "AgentHub is not reachable at $url"
  exit 1
}
status=${answer##*$'\n'}
body=${answer%$'\n'*}
if [[ $status != 200 ]]; then
  echo "Restart failed ($status): $(json_string "$body" message || printf '%s' "$body")"
  exit 1
fi
echo "Restarted $1: $(json_string "$body" status || echo done)"
