# Generates grafana-dashboard.json (python3 deploy/monitoring/gen_dashboard.py): one place to
# change panels; the JSON is committed for users to import, and copied to helm/herald/files/
# (deploy/validate.sh checks the copy).
import json
panels=[]
y=0
def row(title):
    global y
    panels.append({"type":"row","title":title,"collapsed":False,"gridPos":{"h":1,"w":24,"x":0,"y":y},"id":len(panels)+1,"panels":[]})
    y+=1
def ts(title, targets, unit="short", x=0, w=12, desc=""):
    panels.append({
        "type":"timeseries","title":title,"description":desc,"id":len(panels)+1,
        "datasource":{"type":"prometheus","uid":"${datasource}"},
        "gridPos":{"h":8,"w":w,"x":x,"y":y},
        "fieldConfig":{"defaults":{"unit":unit},"overrides":[]},
        "options":{"legend":{"displayMode":"list","placement":"bottom"},"tooltip":{"mode":"multi"}},
        "targets":[{"datasource":{"type":"prometheus","uid":"${datasource}"},"expr":e,"legendFormat":l,"refId":chr(65+i)} for i,(e,l) in enumerate(targets)],
    })
def advance():
    global y
    y+=8
I='{instance=~"$instance"}'
ERR='{instance=~"$instance",status=~"5..|429"}'
R='[$__rate_interval]'
row("Connections")
ts("Connections per node",[("herald_node_connections"+I,"{{instance}}"),("herald_cluster_mean_connections"+I,"mean seen by {{instance}}"),("herald_node_max_connections"+I+" > 0","max_connections {{instance}}")],desc="Open WebSocket connections; the mean is what rebalancing aims at.")
ts("Connections per app",[("sum by (app) (herald_connections"+I+")","{{app}}")],x=12)
advance()
ts("Connects and closes per second",[("sum by (app) (rate(herald_connections_opened_total"+I+R+"))","opened {{app}}"),("sum by (code) (rate(herald_connections_closed_total"+I+R+"))","closed {{code}}")],unit="ops")
ts("Refused, moved and cut off",[("sum by (code) (rate(herald_connections_refused_total"+I+R+"))","refused {{code}}"),("sum by (instance) (rate(herald_rebalanced_connections_total"+I+R+"))","rebalanced {{instance}}"),("sum by (app) (rate(herald_slow_consumer_disconnects_total"+I+R+"))","slow consumers {{app}}")],unit="ops",x=12)
advance()
row("Deliveries")
ts("Messages per second",[("sum by (app) (rate(herald_messages_sent_total"+I+R+"))","sent {{app}}"),("sum by (app) (rate(herald_messages_received_total"+I+R+"))","received {{app}}"),("sum by (app) (rate(herald_outbound_dropped_total"+I+R+"))","dropped {{app}}")],unit="ops")
ts("Publish to delivery latency",[("histogram_quantile(0.5, sum by (le, origin) (rate(herald_publish_delivery_seconds_bucket"+I+R+")))","p50 {{origin}}"),("histogram_quantile(0.99, sum by (le, origin) (rate(herald_publish_delivery_seconds_bucket"+I+R+")))","p99 {{origin}}")],unit="s",x=12)
advance()
ts("Bytes per second",[("sum by (app) (rate(herald_sent_bytes_total"+I+R+"))","sent {{app}}"),("sum by (app) (rate(herald_received_bytes_total"+I+R+"))","received {{app}}")],unit="Bps")
ts("Channels and apps",[("sum by (app) (herald_channels"+I+")","channels {{app}}"),("max by (source) (herald_apps"+I+")","apps ({{source}})")],x=12)
advance()
row("HTTP API")
ts("Requests per second",[("sum by (endpoint, status) (rate(herald_http_requests_total"+I+R+"))","{{endpoint}} {{status}}"),("sum by (app) (rate(herald_api_events_total"+I+R+"))","events {{app}}")],unit="reqps")
ts("Errors and latency",[("sum(rate(herald_http_requests_total"+ERR+R+"))","5xx and 429 per second"),("histogram_quantile(0.99, sum by (le, endpoint) (rate(herald_http_request_duration_seconds_bucket"+I+R+")))","p99 seconds {{endpoint}}")],x=12)
advance()
row("Backplane (Redis)")
ts("Readiness",[("herald_ready"+I,"ready {{instance}}"),("herald_backplane_ready"+I,"backplane {{instance}}"),("herald_cluster_version"+I,"cluster version {{instance}}")],desc="1 = ready: /ready, and the backplane's own view.")
ts("Operation latency p99",[("histogram_quantile(0.99, sum by (le, op) (rate(herald_backplane_operation_seconds_bucket"+I+R+")))","{{op}}")],unit="s",x=12)
advance()
ts("Errors, reconnects, failovers",[("sum by (op) (rate(herald_backplane_errors_total"+I+R+"))","errors {{op}}"),("sum by (instance) (increase(herald_backplane_reconnects_total"+I+R+"))","reconnects {{instance}}"),("sum by (instance) (increase(herald_backplane_primary_changes_total"+I+R+"))","primary changes {{instance}}")])
advance()
row("Webhooks")
ts("Webhook events by outcome",[("sum by (outcome) (rate(herald_webhook_events_total"+I+R+"))","{{outcome}}")],unit="ops")
ts("Queue depth and delivery latency",[("max(herald_webhook_queue_depth"+I+")","queue depth"),("histogram_quantile(0.99, sum by (le) (rate(herald_webhook_delivery_seconds_bucket"+I+R+")))","p99 delivery seconds")],x=12)
advance()
dash={
 "title":"Herald","uid":"herald-overview","editable":True,"schemaVersion":39,"version":1,"tags":["herald","pusher"],
 "time":{"from":"now-1h","to":"now"},"refresh":"30s",
 "description":"Herald nodes: connections, deliveries, HTTP API, Redis backplane, webhooks (deploy/monitoring, README Metrics).",
 "templating":{"list":[
   {"name":"datasource","type":"datasource","query":"prometheus","label":"Data source"},
   {"name":"instance","type":"query","datasource":{"type":"prometheus","uid":"${datasource}"},"query":"label_values(herald_node_connections, instance)","includeAll":True,"multi":True,"current":{"text":"All","value":"$__all"},"label":"Node","refresh":2}
 ]},
 "panels":panels,
}
import os
json.dump(dash, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'grafana-dashboard.json'), 'w'), indent=2)
import shutil
shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'grafana-dashboard.json'),
                os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'helm', 'herald', 'files', 'grafana-dashboard.json'))
