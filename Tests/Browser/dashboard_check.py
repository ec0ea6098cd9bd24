#!/usr/bin/env python3
"""Drives the Baton dashboard in a real browser (Debian's chromium through chromium-driver,
with selenium) and checks what a user sees. Called by DashboardTests with one JSON argument:

  {"url", "chromedriver", "chromium", "screenshots", "alphaKey", "betaKey",
   "starsRun", "welcomeRun", "waitingRun", "liveRun", "delayedEvent", "jobs": [...]}

Prints one line per check and exits 1 on the first that fails (with what was on the page)."""
import json
import os
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

args = json.loads(sys.argv[1])
base = args["url"].rstrip("/")
shots = args["screenshots"]
os.makedirs(shots, exist_ok=True)

options = webdriver.ChromeOptions()
options.binary_location = args["chromium"]
for flag in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1400,1800"]:
    options.add_argument(flag)
driver = webdriver.Chrome(service=Service(executable_path=args["chromedriver"]), options=options)
driver.set_page_load_timeout(30)


def check(condition, what):
    if not condition:
        path = os.path.join(shots, "failure.png")
        driver.save_screenshot(path)
        print(f"FAILED: {what}\n  at {driver.current_url}\n  screenshot {path}\n  page text:\n{driver.find_element(By.TAG_NAME, 'body').text[:3000]}")
        driver.quit()
        sys.exit(1)
    print(f"ok: {what}")


def eventually(predicate, what, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if predicate():
                return check(True, what)
        except Exception:  # the page is being replaced by the live refresh
            pass
        time.sleep(0.25)
    check(False, what)


def shot(name):
    path = os.path.join(shots, name + ".png")
    driver.save_screenshot(path)
    print(f"screenshot: {path}")


def sign_in(key):
    driver.get(base + "/login")
    driver.find_element(By.ID, "api-key").send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    eventually(lambda: driver.current_url.endswith("/jobs"), "signed in, on the jobs page")


def texts(selector):
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, selector)]


try:
    # Without a key the services answer 401: the dashboard asks to sign in.
    driver.get(base + "/runs")
    check("/login" in driver.current_url, "without a key, the runs page leads to sign-in")
    driver.find_element(By.ID, "api-key").send_keys("bk_prod_" + "0" * 64)
    driver.find_element(By.ID, "sign-in").click()
    # Awaited: the answer page replaces the form (reading the old page's element goes stale).
    eventually(lambda: "do not know this key" in driver.find_element(By.ID, "login-message").text, "an unknown key is refused with a message")

    sign_in(args["alphaKey"])
    # Live refresh: a running run's page follows it to the end without being reloaded.
    driver.get(base + "/runs/" + args["liveRun"])
    driver.execute_script("window.__notReloaded = true;")
    first = driver.find_element(By.ID, "run-status").text
    check(first in ("QUEUED", "EXECUTING", "WAITING"), f"the live run is still running when its page opens ({first})")
    eventually(lambda: driver.find_element(By.ID, "run-status").text == "COMPLETED", "the open page shows the run completed", seconds=60)
    check(driver.execute_script("return window.__notReloaded === true;"), "the page refreshed in place (no reload)")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#task-tree [data-task-key]")) >= 20, "the refreshed page shows the tasks that ran meanwhile")
    shot("run-live-completed")

    driver.get(base + "/jobs")
    rows = {e.get_attribute("data-job"): e for e in driver.find_elements(By.CSS_SELECTOR, "tr.job")}
    check(set(args["jobs"]) <= set(rows), f"the jobs page lists {args['jobs']} (saw {sorted(rows)})")
    check("1.0.0" in rows["github-stars"].find_element(By.CSS_SELECTOR, ".versions").text, "the jobs page shows versions")
    check("COMPLETED" in rows["new-user-welcome"].text, "the jobs page counts runs by status")
    check(rows["new-user-welcome"].find_element(By.CSS_SELECTOR, ".enabled").text == "yes", "an enabled job shows as enabled")
    check(args["disabledJob"] in rows and rows[args["disabledJob"]].find_element(By.CSS_SELECTOR, ".enabled").text == "no",
          "a job registered disabled shows as not enabled")
    limits = rows[args["disabledJob"]].find_element(By.CSS_SELECTOR, ".limits").text
    check(limits == "2 at once per account; throttle 5 per 60 s", f"the jobs page shows a job's concurrency limit and flow control (saw {limits!r})")
    check(rows["new-user-welcome"].find_element(By.CSS_SELECTOR, ".limits").text == "—", "a job without limits shows none")
    shot("jobs")
    driver.get(base + "/jobs?q=github")
    check([e.get_attribute("data-job") for e in driver.find_elements(By.CSS_SELECTOR, "tr.job")] == ["github-stars"], "the jobs filter narrows to github-stars")

    # The seeds' keys guide: "⭐️ New Star" at the top and again under "digest" and "archive".
    driver.get(base + "/runs/" + args["starsRun"])
    check(driver.find_element(By.ID, "job-version").text == "1.0.0", "the run page shows the job version")
    check(driver.find_element(By.ID, "run-status").text == "COMPLETED", "the github-stars run completed")
    tree = driver.find_element(By.ID, "task-tree")
    top = tree.find_elements(By.XPATH, "./div/div[@data-task-key]")
    top_keys = [t.get_attribute("data-task-key") for t in top]
    check(top_keys.count("⭐️ New Star") == 1 and "digest" in top_keys and "archive" in top_keys and "Wait 0" in top_keys,
          f"top-level tasks in order, once each (saw {top_keys})")
    for parent in ["digest", "archive"]:
        node = tree.find_element(By.CSS_SELECTOR, f'[data-task-key="{parent}"]')
        children = [c.get_attribute("data-task-key") for c in node.find_elements(By.XPATH, "./div[@class='children']/div/div[@data-task-key]")]
        check(children == ["⭐️ New Star"], f"'{parent}' holds its subtask '⭐️ New Star' (saw {children})")
    check(len(driver.find_elements(By.CSS_SELECTOR, "#timeline .bar")) >= 14, "the timeline has a bar per task")
    shot("run-github-stars")

    # Parallel branches side by side: the two branches' waits overlapped in time.
    driver.get(base + "/runs/" + args["parallelRun"])
    groups = [[t.get_attribute("data-task-key") for t in g.find_elements(By.XPATH, "./div[@data-task-key]")]
              for g in driver.find_elements(By.CSS_SELECTOR, "#task-tree > .parallel")]
    check(any({"a wait", "b wait"} <= set(g) for g in groups), f"the parallel branches' waits are side by side (groups {groups})")
    shot("run-parallel")

    driver.get(base + "/runs/" + args["importRun"])
    status = driver.find_element(By.ID, "run-latest-status").text
    check("Imported 2 of 2 batches" in status and "success" in status, f"the run page shows the latest io.createStatus ({status!r})")
    shot("run-batch-import")

    # Child jobs: the parent links its two children (charge, one packed item), each links back.
    driver.get(base + "/runs/" + args["orderRun"])
    children = [a.get_attribute("href").rsplit("/", 1)[-1] for a in driver.find_elements(By.CSS_SELECTOR, "#child-runs a.child-run")]
    check(len(children) == 2, f"the parent run lists its child runs (saw {children})")
    shot("run-fulfil-order")
    driver.find_elements(By.CSS_SELECTOR, "#child-runs a.child-run")[0].click()
    eventually(lambda: driver.find_elements(By.ID, "parent-run") and driver.find_element(By.ID, "parent-run").text == args["orderRun"],
               "the child run links back to its parent")
    check(driver.find_element(By.ID, "run-status").text == "COMPLETED", "the child run completed")

    driver.get(base + "/runs/" + args["welcomeRun"])
    check(driver.find_element(By.ID, "job-version").text == "1.0.0", "the welcome run shows its version")
    check("Welcome aboard" in driver.find_element(By.ID, "run-output").text, "the run page shows the output")
    logs = driver.find_element(By.ID, "run-logs").text
    check("Welcoming" in logs and "Welcome e-mail sent" in logs, "the run page shows the logs")
    check('"email"' in driver.find_element(By.ID, "run-payload").text, "the run page shows the payload")
    wait = driver.find_element(By.CSS_SELECTOR, '[data-task-key="give them a moment"]')
    check("until" in wait.text, "a wait shows its due time")
    shot("run-new-user-welcome")

    # The runs page filters by status.
    driver.get(base + "/runs")
    all_rows = driver.find_elements(By.CSS_SELECTOR, "tr.run")
    check(len(all_rows) >= 4, f"the runs page lists the runs ({len(all_rows)})")
    check(all(r.find_element(By.CSS_SELECTOR, ".version").text for r in all_rows), "every row shows its job version")
    driver.find_element(By.CSS_SELECTOR, 'input[name=status][value="WAITING"]').click()
    driver.find_element(By.ID, "apply-filters").click()
    eventually(lambda: "status=WAITING" in driver.current_url, "the status filter is applied")
    statuses = {r.get_attribute("data-run"): r.get_attribute("data-status") for r in driver.find_elements(By.CSS_SELECTOR, "tr.run")}
    check(args["waitingRun"] in statuses and set(statuses.values()) == {"WAITING"}, f"only WAITING runs are listed ({statuses})")
    shot("runs-waiting")

    # Cancel from the run page.
    driver.get(base + "/runs/" + args["waitingRun"])
    check(driver.find_element(By.ID, "run-status").text == "WAITING", "the run to cancel is waiting")
    driver.find_element(By.ID, "cancel-run").click()
    eventually(lambda: driver.find_element(By.ID, "run-status").text == "CANCELED", "cancel from the page cancels the run")
    check(not driver.find_elements(By.ID, "cancel-run"), "a canceled run offers no cancel button")
    shot("run-canceled")

    # Events: the delayed one, cancelled from the page.
    driver.get(base + "/events")
    check(driver.find_elements(By.CSS_SELECTOR, f'#delayed-events tr[data-event="{args["delayedEvent"]}"]'), "the events page shows the delayed event")
    check(driver.find_elements(By.CSS_SELECTOR, "#recent-events tr.event"), "the events page shows recent events")
    shot("events")
    driver.find_element(By.CSS_SELECTOR, f'#delayed-events tr[data-event="{args["delayedEvent"]}"] button').click()
    eventually(lambda: not driver.find_elements(By.CSS_SELECTOR, f'#delayed-events tr[data-event="{args["delayedEvent"]}"]'),
               "the delayed event is gone once canceled")

    # Another tenant's key sees none of it.
    driver.find_element(By.CSS_SELECTOR, "header form button").click()
    sign_in(args["betaKey"])
    check(not driver.find_elements(By.CSS_SELECTOR, "tr.job"), "beta sees no jobs")
    driver.get(base + "/runs")
    check(not driver.find_elements(By.CSS_SELECTOR, "tr.run"), "beta sees no runs")
    driver.get(base + "/runs/" + args["welcomeRun"])
    check("No such run" in driver.find_element(By.TAG_NAME, "h1").text, "beta cannot open alpha's run")
    driver.get(base + "/events")
    body = driver.find_element(By.TAG_NAME, "main").text
    check(args["delayedEvent"] not in body and not driver.find_elements(By.CSS_SELECTOR, "tr.event"), "beta sees no events")
    shot("other-tenant")
    print("all dashboard checks passed")
finally:
    driver.quit()
