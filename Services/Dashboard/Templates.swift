import Mustache

/// The dashboard's pages (Mustache, HTML-escaped by default), its style sheet and its one
/// script. Kept in the binary: the dashboard has no files to deploy beside it.
enum Templates {
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [("layout", layout), ("jobs", jobs), ("runs", runs), ("run", run), ("task", task),
                             ("events", events), ("login", login), ("problem", problem)] {
            try library.register(text, named: name)
        }
        return library
    }

    static let layout = """
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{$title}}Baton{{/title}} · Baton</title>
    <link rel="stylesheet" href="/static/app.css">
    <script src="/static/app.js" defer></script>
    </head>
    <body>
    <header>
      <a class="brand" href="/jobs">Baton</a>
      <nav><a href="/jobs">Jobs</a><a href="/runs">Runs</a><a href="/events">Events</a></nav>
      <span class="session">{{#signedIn}}signed in with a key · <form method="post" action="/logout" class="inline"><button>Sign out</button></form>{{/signedIn}}{{^signedIn}}<a href="/login">Sign in</a>{{/signedIn}}</span>
    </header>
    {{$body}}{{/body}}
    </body>
    </html>
    """

    static let jobs = """
    {{<layout}}{{$title}}Jobs{{/title}}{{$body}}
    <main id="jobs">
    <h1>Jobs</h1>
    <form method="get" action="/jobs" class="filters"><input name="q" value="{{query}}" placeholder="Filter by id, name or trigger"><button>Filter</button></form>
    {{^rows}}<p class="empty">No jobs{{#hasQuery}} match “{{query}}”{{/hasQuery}}. A job service registers its jobs when it starts.</p>{{/rows}}
    {{#hasRows}}
    <table>
    <thead><tr><th>Job</th><th>Name</th><th>Versions</th><th>Trigger</th><th>Enabled</th><th>Limits</th><th>Last run</th><th>Runs by status</th></tr></thead>
    <tbody>
    {{#rows}}
    <tr class="job" data-job="{{id}}">
      <td><a href="/runs?job={{id}}">{{id}}</a></td>
      <td>{{name}}</td>
      <td class="versions">{{versions}}</td>
      <td>{{trigger}}{{#hasFilter}}<div class="filter">{{filter}}</div>{{/hasFilter}}</td>
      <td class="enabled">{{enabled}}</td>
      <td class="limits">{{limits}}</td>
      <td>{{#hasLastRun}}<a href="/runs/{{lastRunId}}">{{lastRun}}</a> <span class="status status-{{lastRunStatus}}">{{lastRunStatus}}</span>{{/hasLastRun}}{{^hasLastRun}}never{{/hasLastRun}}</td>
      <td>{{#counts}}<a class="status status-{{status}}" href="/runs?job={{id}}&amp;status={{status}}">{{status}} {{count}}</a> {{/counts}}{{^counts}}none{{/counts}}</td>
    </tr>
    {{/rows}}
    </tbody>
    </table>
    {{/hasRows}}
    </main>
    {{/body}}{{/layout}}
    """

    static let runs = """
    {{<layout}}{{$title}}Runs{{/title}}{{$body}}
    <main id="runs"{{#live}} data-live="2000"{{/live}}>
    <h1>Runs</h1>
    <form method="get" action="/runs" class="filters" id="run-filters">
      <label>Job <input name="job" value="{{filter.job}}" placeholder="any"></label>
      <fieldset class="statuses"><legend>Status</legend>
      {{#statusChoices}}<label class="status status-{{status}}"><input type="checkbox" name="status" value="{{status}}"{{#checked}} checked{{/checked}}> {{status}}</label>{{/statusChoices}}
      </fieldset>
      <label>Created from <input type="datetime-local" step="1" name="createdFrom" value="{{filter.createdFrom}}"></label>
      <label>to <input type="datetime-local" step="1" name="createdTo" value="{{filter.createdTo}}"></label>
      <label>Event id <input name="eventId" value="{{filter.eventId}}" placeholder="any"></label>
      <button id="apply-filters">Apply</button> <a href="/runs">Clear</a>
    </form>
    <p class="hint">Times are UTC. Newest first, {{pageSize}} a page.</p>
    {{^rows}}<p class="empty">No runs match.</p>{{/rows}}
    {{#hasRows}}
    <table id="run-list">
    <thead><tr><th>Run</th><th>Job</th><th>Version</th><th>Status</th><th>Event</th><th>Created</th><th>Duration</th></tr></thead>
    <tbody>
    {{#rows}}
    <tr class="run" data-run="{{id}}" data-status="{{status}}">
      <td><a href="/runs/{{id}}">{{id}}</a>{{#isReplay}} <span class="tag">replay</span>{{/isReplay}}</td>
      <td><a href="/runs?job={{jobId}}">{{jobId}}</a></td>
      <td class="version">{{jobVersion}}</td>
      <td><span class="status status-{{status}}">{{status}}</span></td>
      <td><a href="/runs?eventId={{eventId}}">{{eventName}}</a></td>
      <td>{{createdAt}}</td>
      <td>{{duration}}</td>
    </tr>
    {{/rows}}
    </tbody>
    </table>
    {{/hasRows}}
    <nav class="pages">{{#isLaterPage}}<a href="/runs?{{firstQuery}}">« Newest</a>{{/isLaterPage}} {{#hasNext}}<a id="next-page" href="/runs?{{nextQuery}}">Older »</a>{{/hasNext}}</nav>
    </main>
    {{/body}}{{/layout}}
    """

    static let task = """
    <div class="task status-border-{{status}}" data-task-key="{{key}}" data-task-status="{{status}}">
      <div class="task-head"><span class="task-name">{{name}}</span>{{#showKey}} <code class="key">{{key}}</code>{{/showKey}} <span class="status status-{{status}}">{{status}}</span>
        {{#isWait}}<span class="wait">until {{waitUntil}}</span>{{/isWait}}
        <span class="muted">{{startedAt}} {{duration}}</span>{{#hasRetries}} <span class="attempts">{{attempts}} attempts</span>{{/hasRetries}}</div>
      {{#hasError}}<pre class="error">{{error}}</pre>{{/hasError}}
      {{#hasOutput}}<details><summary>output</summary><pre class="task-output">{{output}}</pre></details>{{/hasOutput}}
      {{#hasChildren}}<div class="children">{{#groups}}<div class="{{#parallel}}parallel{{/parallel}}{{^parallel}}serial{{/parallel}}">{{#tasks}}{{> task}}{{/tasks}}</div>{{/groups}}</div>{{/hasChildren}}
    </div>
    """

    static let run = """
    {{<layout}}{{$title}}Run {{run.id}}{{/title}}{{$body}}
    <main id="run" data-run="{{run.id}}" data-status="{{run.status}}"{{#live}} data-live="1000"{{/live}}>
    <h1>Run <code>{{run.id}}</code> <span class="status status-{{run.status}}" id="run-status">{{run.status}}</span></h1>
    <dl class="facts">
      <dt>Job</dt><dd><a href="/runs?job={{run.jobId}}">{{run.jobId}}</a></dd>
      <dt>Version</dt><dd id="job-version">{{run.jobVersion}}</dd>
      <dt>Event</dt><dd><a href="/runs?eventId={{run.eventId}}">{{run.eventName}}</a> <code>{{run.eventId}}</code></dd>
      <dt>Created</dt><dd>{{created}}</dd>
      <dt>Ended</dt><dd>{{#hasEnded}}{{completed}}{{/hasEnded}}{{^hasEnded}}—{{/hasEnded}}</dd>
      <dt>Duration</dt><dd>{{duration}}</dd>
      {{#isReplay}}<dt>Replay of</dt><dd><a href="/runs/{{replayOf}}" id="replay-of">{{replayOf}}</a></dd>{{/isReplay}}
      {{#hasParent}}<dt>Child of</dt><dd><a href="/runs/{{parentRun}}" id="parent-run">{{parentRun}}</a></dd>{{/hasParent}}
      {{#hasChildren}}<dt>Child runs</dt><dd id="child-runs">{{#childRuns}}<a href="/runs/{{id}}" class="child-run">{{id}}</a> {{/childRuns}}</dd>{{/hasChildren}}
      {{#hasStatus}}<dt>Status</dt><dd id="run-latest-status">{{statusLabel}}{{#hasStatusState}} <span class="status-state state-{{statusState}}">{{statusState}}</span>{{/hasStatusState}}{{#hasStatusData}} <code>{{statusData}}</code>{{/hasStatusData}}</dd>{{/hasStatus}}
    </dl>
    <div class="actions">
      {{#live}}<form method="post" action="/runs/{{run.id}}/cancel" class="inline"><button id="cancel-run" class="danger">Cancel run</button></form>{{/live}}
      <form method="post" action="/runs/{{run.id}}/replay" class="inline"><button id="replay-run">Replay</button></form>
    </div>
    {{#hasError}}<h2>Error</h2><pre class="error" id="run-error">{{error}}</pre>{{/hasError}}
    {{#hasOutput}}<h2>Output</h2><pre id="run-output">{{output}}</pre>{{/hasOutput}}
    <h2>Tasks</h2>
    {{^groups}}<p class="empty">No tasks yet.</p>{{/groups}}
    <div id="task-tree" class="children">{{#groups}}<div class="{{#parallel}}parallel{{/parallel}}{{^parallel}}serial{{/parallel}}">{{#tasks}}{{> task}}{{/tasks}}</div>{{/groups}}</div>
    {{#hasTimeline}}
    <h2>Timeline</h2>
    <div id="timeline">
    {{#timeline}}<div class="bar-row"><span class="bar-label" style="padding-left: {{depth}}em">{{name}}</span><span class="bar-track"><span class="bar status-bg-{{status}}" style="margin-left: {{offset}}%; width: {{width}}%" title="{{startedAt}}, {{duration}}"></span></span><span class="muted">{{startedAt}} · {{duration}}</span></div>{{/timeline}}
    </div>
    {{/hasTimeline}}
    <h2>Logs</h2>
    {{^logs}}<p class="empty">No log lines.</p>{{/logs}}
    {{#hasLogs}}<table id="run-logs"><tbody>{{#logs}}<tr class="log level-{{level}}"><td class="muted">{{time}}</td><td>{{level}}</td><td>{{message}}</td><td><code>{{properties}}</code></td></tr>{{/logs}}</tbody></table>{{/hasLogs}}
    <h2>Payload</h2><pre id="run-payload">{{payload}}</pre>
    {{#hasContext}}<h2>Context</h2><pre id="run-context">{{context}}</pre>{{/hasContext}}
    </main>
    {{/body}}{{/layout}}
    """

    static let events = """
    {{<layout}}{{$title}}Events{{/title}}{{$body}}
    <main id="events" data-live="5000">
    <h1>Events</h1>
    <h2>Delayed, not delivered yet</h2>
    {{^delayed}}<p class="empty">No delayed events waiting.</p>{{/delayed}}
    {{#hasDelayed}}
    <table id="delayed-events"><thead><tr><th>Id</th><th>Name</th><th>Due</th><th>Payload</th><th></th></tr></thead><tbody>
    {{#delayed}}<tr class="event" data-event="{{id}}"><td><code>{{id}}</code></td><td>{{name}}</td><td>{{deliverAt}}</td><td><code>{{payload}}</code></td>
    <td><form method="post" action="/events/{{id}}/cancel" class="inline"><button class="danger cancel-event">Cancel</button></form></td></tr>{{/delayed}}
    </tbody></table>
    {{/hasDelayed}}
    <h2>Received recently</h2>
    {{^recent}}<p class="empty">No events received.</p>{{/recent}}
    {{#hasRecent}}
    <table id="recent-events"><thead><tr><th>Id</th><th>Name</th><th>Source</th><th>Sent</th><th>Received</th><th>Runs</th><th></th></tr></thead><tbody>
    {{#recent}}<tr class="event" data-event="{{id}}"><td><code>{{id}}</code></td><td>{{name}}</td><td>{{source}}</td><td>{{timestamp}}</td><td>{{receivedAt}}</td>
    <td>{{#isPending}}<span class="status status-QUEUED">due {{deliverAt}}</span>{{/isPending}}{{^isPending}}{{#dispatched}}<a href="/runs?eventId={{id}}">runs</a>{{/dispatched}}{{^dispatched}}{{delayedStatus}}{{/dispatched}}{{/isPending}}</td>
    <td>{{#dispatched}}<form method="post" action="/events/{{id}}/cancel-runs" class="inline"><button class="danger">Cancel its runs</button></form>{{/dispatched}}</td></tr>{{/recent}}
    </tbody></table>
    {{/hasRecent}}
    </main>
    {{/body}}{{/layout}}
    """

    static let login = """
    {{<layout}}{{$title}}Sign in{{/title}}{{$body}}
    <main id="login">
    <h1>Sign in</h1>
    {{#hasMessage}}<p class="error" id="login-message">{{message}}</p>{{/hasMessage}}
    <p>Give an API key (made with <code>baton keys create</code>): you see the jobs, runs and events of its project and environment only.</p>
    <form method="post" action="/login"><input type="password" name="key" id="api-key" autocomplete="off" placeholder="API key" required> <button id="sign-in">Sign in</button></form>
    </main>
    {{/body}}{{/layout}}
    """

    static let problem = """
    {{<layout}}{{$title}}{{heading}}{{/title}}{{$body}}
    <main id="problem">
    <h1>{{heading}}</h1>
    <p class="error">{{message}}</p>
    <p><a href="javascript:history.back()">Back</a></p>
    </main>
    {{/body}}{{/layout}}
    """

    static let css = """
    :root { --fg: #1d232a; --muted: #6b7480; --line: #e1e5ea; --bg: #f7f8fa; --accent: #3451b2; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
    header { display: flex; gap: 2em; align-items: center; padding: .6em 1.5em; background: #1d232a; color: #fff; }
    header a { color: #fff; text-decoration: none; margin-right: 1.2em; }
    header .brand { font-weight: 700; }
    header .session { margin-left: auto; color: #c9ced6; }
    main { padding: 1em 1.5em 3em; }
    h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
    a { color: var(--accent); }
    table { border-collapse: collapse; width: 100%; background: #fff; }
    th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-weight: 600; color: var(--muted); }
    pre { background: #fff; border: 1px solid var(--line); padding: .6em; overflow: auto; max-height: 24em; }
    .inline { display: inline; }
    button { font: inherit; padding: .25em .8em; border: 1px solid var(--line); border-radius: 4px; background: #fff; cursor: pointer; }
    button.danger { color: #a1261b; border-color: #e6b3ae; }
    .filters { display: flex; flex-wrap: wrap; gap: .6em 1em; align-items: end; margin-bottom: .8em; }
    .filters fieldset { border: 1px solid var(--line); padding: .2em .6em; }
    .statuses label { margin-right: .4em; }
    .hint, .muted, .empty { color: var(--muted); }
    .tag { font-size: .8em; background: #eef; padding: 0 .4em; border-radius: 3px; }
    .filter { font-size: .85em; color: var(--muted); }
    .status { display: inline-block; padding: 0 .5em; border-radius: 999px; font-size: .8em; font-weight: 600; text-decoration: none; }
    .status-QUEUED { background: #eceff3; color: #4b5563; }
    .status-EXECUTING, .status-RUNNING { background: #dbe7ff; color: #1e429f; }
    .status-WAITING { background: #fff3c4; color: #7a5a00; }
    .status-COMPLETED { background: #d9f2e0; color: #1b6b34; }
    .status-FAILED, .status-ERRORED, .status-INVALID_PAYLOAD, .status-TIMED_OUT { background: #fde0dd; color: #a1261b; }
    .status-CANCELED { background: #e5e7eb; color: #374151; text-decoration: line-through; }
    .status-bg-RUNNING { background: #6b8fe8; } .status-bg-WAITING { background: #e3b90b; }
    .status-bg-COMPLETED { background: #3fa561; } .status-bg-ERRORED { background: #d9483b; }
    .facts { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em; }
    .facts dt { color: var(--muted); } .facts dd { margin: 0; }
    .actions { margin: 1em 0; display: flex; gap: .6em; }
    .children { display: flex; flex-direction: column; gap: .4em; }
    .task .children { margin: .4em 0 0 1.2em; }
    .parallel { display: flex; flex-direction: row; gap: .6em; align-items: flex-start; }
    .parallel > .task { flex: 1 1 0; }
    .serial { display: flex; flex-direction: column; }
    .task { background: #fff; border: 1px solid var(--line); border-left: 4px solid var(--line); padding: .35em .6em; border-radius: 4px; }
    .status-border-COMPLETED { border-left-color: #3fa561; } .status-border-ERRORED { border-left-color: #d9483b; }
    .status-border-RUNNING { border-left-color: #6b8fe8; } .status-border-WAITING { border-left-color: #e3b90b; }
    .task-name { font-weight: 600; }
    .key { font-size: .85em; color: var(--muted); }
    .attempts { color: #a1261b; font-size: .85em; }
    .wait { font-size: .85em; color: #7a5a00; }
    .error { color: #a1261b; }
    #timeline .bar-row { display: grid; grid-template-columns: 16em 1fr 12em; gap: .6em; align-items: center; padding: .1em 0; }
    .bar-track { position: relative; height: .8em; background: #eef0f3; border-radius: 3px; display: flex; }
    .bar { display: block; height: 100%; border-radius: 3px; min-width: 2px; }
    .pages { margin-top: 1em; display: flex; gap: 1em; }
    .log.level-error td, .log.level-warning td { color: #a1261b; }
    """

    /// Live refresh: a page whose `main` has `data-live` (a run still executing) fetches itself
    /// every that many milliseconds and swaps its `main`, until the page no longer asks for it.
    static let script = """
    (function () {
      function schedule() {
        var main = document.querySelector('main[data-live]');
        if (!main) return;
        setTimeout(async function () {
          try {
            var response = await fetch(location.href, { headers: { 'Accept': 'text/html' }, credentials: 'same-origin' });
            if (response.ok) {
              var page = new DOMParser().parseFromString(await response.text(), 'text/html');
              var fresh = page.querySelector('main');
              var current = document.querySelector('main');
              if (fresh && current) {
                var open = Array.from(current.querySelectorAll('details[open]')).map(function (d) { return d.closest('[data-task-key]')?.dataset.taskKey; });
                current.replaceWith(fresh);
                fresh.querySelectorAll('[data-task-key]').forEach(function (t) { if (open.includes(t.dataset.taskKey)) { var d = t.querySelector('details'); if (d) d.open = true; } });
              }
            }
          } catch (e) { /* the next round tries again */ }
          schedule();
        }, parseInt(main.dataset.live, 10) || 2000);
      }
      document.addEventListener('DOMContentLoaded', schedule);
    })();
    """
}
