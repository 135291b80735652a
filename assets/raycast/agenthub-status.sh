#!/bin/bash

# Raycast script command: AgentHub's state inline, refreshed every minute: servers running and
# failed, and Ollama. Needs only bash and curl; AGENTHUB_URL and AGENTHUB_TOKEN from the
# environment.

# Required parameters:
# @raycast.schemaVersion 1
# @raycast.title AgentHub Status
# @raycast.mode inline

# Optional parameters:
# @raycast.icon 🛰️
# @raycast.refreshTime 1m
# @raycast.packageName AgentHub

# Documentation:
# @raycast.description Servers running and failed in AgentHub, and whether Ollama is up
# @raycast.author AgentHub

url=${AGENTHUB_URL:-http://127.0.0.1:9090}
url=${url%/}

# The token as a curl config line, read through a pipe: never on a command line, where ps shows it.
auth() {
  [[ -n $AGENTHUB_TOKEN ]] && printf 'header = "Authorization: Bearer %s"\n' "${AGENTHUB_TOKEN//\"/\\\"}"
  return 0
}

# How many times $2 occurs in $1.
count() {
  local rest=$1 n=0
  while [[ $rest == *"$2"* ]]; do
    rest=${rest#*"$2"}
    n=$((n + 1))
  done
  echo "$n"
}

answer=$(curl -sS --max-time 5 -K <(auth) -w $'\n%{http_code}' "$url/health" 2>/dev/null) || {
  echo "AgentHub down ($url)"
  exit 1
}
status=${answer##*$'\n'}
body=${answer%$'\n'*}
case $status in
  200) ;;
  401) echo "AgentHub: set AGENTHUB_TOKEN"; exit 1 ;;
  *) echo "AgentHub answered $status"; exit 1 ;;
esac
servers=${body#*\"servers\":}
running=$(count "$servers" '"status":"RUNNING"')
failed=$(count "$servers" '"status":"FAILED"')
ollama=down
[[ $body == *'"ollama":{"status":"up"'* ]] && ollama=up
line="AgentHub: $running running, $failed failed · Ollama $ollama"
if [[ $failed -gt 0 ]]; then
  # Raycast shows inline output in colour through ANSI escapes.
  printf '\033[31m%s\033[0m\n' "$line"
else
  printf '%s\n' "$line"
fi
