//! Every Redis key and channel name Herald uses. Nothing else formats a key.
//!
//! State keys of one app share the hash tag `{app}`, so each Lua transition touches one slot;
//! pub/sub channels are tagged `{app/channel}`, so on a Redis Cluster sharded pub/sub spreads
//! them over the shards. The cluster-wide keys (node list, versions, epoch, reap marks and
//! locks, the webhook streams) are `{prefix}:name` on one server; on a Redis Cluster they carry
//! the hash tag `{prefix}` (`herald:{herald}:nodes`) so the heartbeat script, which touches
//! several of them, stays on one slot. (No release before this one could use a Redis Cluster,
//! so the cluster form needs no version negotiation.)

/// Key builder for one prefix (default `herald`).
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    /// What cluster-wide keys start with: the prefix, or on a Redis Cluster `prefix:{prefix}`.
    global: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            global: prefix.to_owned(),
        }
    }

    /// Keys for a Redis Cluster: the cluster-wide ones share one slot.
    pub fn clustered(prefix: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            global: format!("{prefix}:{{{prefix}}}"),
        }
    }

    /// channel → subscription count.
    pub fn channels(&self, app: &str) -> String {
        format!("{}:{{{app}}}:channels", self.prefix)
    }

    /// socket id → user id of each presence connection.
    pub fn presence(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}}}:presence:{channel}", self.prefix)
    }

    /// user id → connections of that user in the channel.
    pub fn presence_users(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}}}:presence-users:{channel}", self.prefix)
    }

    /// user id → `user_info` JSON of the user's first connection (`null` when none).
    pub fn presence_info(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}}}:presence-info:{channel}", self.prefix)
    }

    /// Membership version of a presence channel: bumped by every member added or removed.
    pub fn presence_version(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}}}:presence-ver:{channel}", self.prefix)
    }

    /// Socket ids signed in as the user.
    pub fn user(&self, app: &str, user: &str) -> String {
        format!("{}:{{{app}}}:user:{user}", self.prefix)
    }

    pub fn cache(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}}}:cache:{channel}", self.prefix)
    }

    /// A webhook debounce / de-duplication marker.
    pub fn mark(&self, app: &str, key: &str) -> String {
        format!("{}:{{{app}}}:mark:{key}", self.prefix)
    }

    /// Debounced webhook checks: key → due time (ms).
    pub fn scheduled(&self, app: &str) -> String {
        format!("{}:{{{app}}}:scheduled", self.prefix)
    }

    /// node id → connections of the app on that node.
    pub fn connections(&self, app: &str) -> String {
        format!("{}:{{{app}}}:conns", self.prefix)
    }

    /// The app's HTTP API requests of the current second (`second:count`), cluster-wide.
    pub fn api_rate(&self, app: &str) -> String {
        format!("{}:{{{app}}}:api-rate", self.prefix)
    }

    /// What a node contributed to an app's state, so survivors can undo it.
    pub fn node(&self, app: &str, node: &str) -> String {
        format!("{}:{{{app}}}:node:{node}", self.prefix)
    }

    /// node id → last heartbeat (ms).
    pub fn nodes(&self) -> String {
        format!("{}:nodes", self.global)
    }

    /// The webhook stream (global: entries of every app) and its dead-letter stream.
    pub fn webhooks(&self) -> String {
        format!("{}:webhooks", self.global)
    }

    pub fn webhooks_dead(&self) -> String {
        format!("{}:webhooks:dead", self.global)
    }

    /// node id → the highest cluster format version the node speaks (`wire::VERSION`). Nodes of
    /// releases before version negotiation write nothing here: absent means version 1.
    pub fn versions(&self) -> String {
        format!("{}:versions", self.global)
    }

    /// A random id set once by the first node to find it missing: it changes only when Redis
    /// loses its data, which tells a node that finds itself missing from the node list whether
    /// it was reaped (same epoch: fence) or Redis restarted empty (new epoch: restore quietly).
    pub fn epoch(&self) -> String {
        format!("{}:epoch", self.global)
    }

    /// Set by the survivor that reaps `node`, for an hour: a heartbeat of that node delivered
    /// late (sent before a partition, arriving after it healed) must not list it again. The node,
    /// finding the mark, fences itself and clears it. Version 1 nodes neither set nor read it.
    pub fn reaped(&self, node: &str) -> String {
        format!("{}:reaped:{node}", self.global)
    }

    /// Reaping lock for a dead node.
    pub fn reap_lock(&self, node: &str) -> String {
        format!("{}:reap:{node}", self.global)
    }

    /// Pub/sub channel of one Pusher channel.
    pub fn channel_topic(&self, app: &str, channel: &str) -> String {
        format!("{}:{{{app}/{channel}}}:ch", self.prefix)
    }

    /// Pub/sub control channel of an app.
    pub fn control_topic(&self, app: &str) -> String {
        format!("{}:{{{app}}}:ctl", self.prefix)
    }

    /// Apps kept in Redis (`app_store = "redis"`): app id → record (JSON).
    pub fn apps(&self) -> String {
        format!("{}:apps", self.global)
    }

    /// app key → app id, so keys stay unique.
    pub fn app_keys(&self) -> String {
        format!("{}:app-keys", self.global)
    }

    /// node id → `connections:accepting:ms` of its latest load report (rebalancing).
    pub fn load(&self) -> String {
        format!("{}:load", self.global)
    }

    /// Pub/sub channel announcing a change of the stored apps to every node.
    pub fn apps_topic(&self) -> String {
        format!("{}:apps-changed", self.global)
    }

    /// What a pub/sub channel name refers to.
    pub fn parse_topic<'a>(&self, topic: &'a str) -> Option<Topic<'a>> {
        if topic == self.apps_topic() {
            return Some(Topic::Apps);
        }
        let rest = topic
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(":{")?;
        let (tag, kind) = rest.rsplit_once("}:")?;
        match kind {
            "ch" => {
                let (app, channel) = tag.split_once('/')?;
                Some(Topic::Channel { app, channel })
            }
            "ctl" => Some(Topic::Control { app: tag }),
            _ => None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Topic<'a> {
    /// The stored apps changed.
    Apps,
    Channel {
        app: &'a str,
        channel: &'a str,
    },
    Control {
        app: &'a str,
    },
}

/// A node's contribution, as stored in its per-app node set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Contribution {
    Subscription { channel: String, socket: String },
    Presence { channel: String, socket: String },
    Signin { user: String, socket: String },
}

impl Contribution {
    /// `s|channel|socket`, `p|channel|socket`, `u|user|socket`: channel names and sign-in user ids
    /// never contain `|`.
    pub fn encode(&self) -> String {
        match self {
            Contribution::Subscription { channel, socket } => format!("s|{channel}|{socket}"),
            Contribution::Presence { channel, socket } => format!("p|{channel}|{socket}"),
            Contribution::Signin { user, socket } => format!("u|{user}|{socket}"),
        }
    }

    pub fn decode(s: &str) -> Option<Contribution> {
        let mut parts = s.splitn(3, '|');
        let (kind, name, socket) = (parts.next()?, parts.next()?, parts.next()?);
        let (name, socket) = (name.to_owned(), socket.to_owned());
        match kind {
            "s" => Some(Contribution::Subscription {
                channel: name,
                socket,
            }),
            "p" => Some(Contribution::Presence {
                channel: name,
                socket,
            }),
            "u" => Some(Contribution::Signin { user: name, socket }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes_carry_the_app_hash_tag() {
        let k = Keys::new("herald");
        assert_eq!(k.channels("app-1"), "herald:{app-1}:channels");
        assert_eq!(
            k.presence_users("app-1", "presence-room"),
            "herald:{app-1}:presence-users:presence-room"
        );
        assert_eq!(k.node("app-1", "n1"), "herald:{app-1}:node:n1");
        assert_eq!(
            k.channel_topic("app-1", "presence-room"),
            "herald:{app-1/presence-room}:ch"
        );
        assert_eq!(k.control_topic("app-1"), "herald:{app-1}:ctl");
    }

    #[test]
    fn cluster_wide_keys_share_a_slot_on_a_redis_cluster() {
        let k = Keys::clustered("herald");
        assert_eq!(k.nodes(), "herald:{herald}:nodes");
        assert_eq!(k.versions(), "herald:{herald}:versions");
        assert_eq!(k.epoch(), "herald:{herald}:epoch");
        assert_eq!(k.reaped("n1"), "herald:{herald}:reaped:n1");
        assert_eq!(k.webhooks_dead(), "herald:{herald}:webhooks:dead");
        // App keys and topics are as on one server.
        assert_eq!(k.channels("a"), "herald:{a}:channels");
        assert_eq!(k.channel_topic("a", "c"), "herald:{a/c}:ch");
        let single = Keys::new("herald");
        assert_eq!(single.nodes(), "herald:nodes");
        assert_eq!(single.reap_lock("n1"), "herald:reap:n1");
    }

    #[test]
    fn topics_parse_back() {
        let k = Keys::new("herald");
        assert_eq!(
            k.parse_topic("herald:{app-1/#server-to-user-u}:ch"),
            Some(Topic::Channel {
                app: "app-1",
                channel: "#server-to-user-u"
            })
        );
        assert_eq!(
            k.parse_topic("herald:{app-1}:ctl"),
            Some(Topic::Control { app: "app-1" })
        );
        assert_eq!(k.parse_topic("other:{a/b}:ch"), None);
    }

    #[test]
    fn contributions_round_trip() {
        for c in [
            Contribution::Subscription {
                channel: "a".into(),
                socket: "1.2".into(),
            },
            Contribution::Presence {
                channel: "presence-x".into(),
                socket: "1.2".into(),
            },
            Contribution::Signin {
                user: "u@x".into(),
                socket: "3.4".into(),
            },
        ] {
            assert_eq!(Contribution::decode(&c.encode()), Some(c));
        }
    }
}
