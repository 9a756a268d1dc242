//! Figure 13: the store on a 3-master Redis Cluster against one Redis, on this machine:
//! chunk events per second at saturation (figure 1's run) and user messages accepted
//! per second (figure 5's run), the two sides alternating.

use super::{Bench, WARMUP, Worker, list};
use crate::load::Hooks;
use crate::load::bench::procs::RedisClusterProcs;
use crate::load::bench::{Figure, median};

impl Bench {
    /// Figure 13: chunk delivery at saturation (figure 1's run) and accepted messages
    /// (figure 5's run) with the store on one Redis and on a 3-master Redis Cluster,
    /// alternating, on this machine.
    pub async fn cluster(&mut self) -> anyhow::Result<Figure> {
        let cluster = RedisClusterProcs::start(&self.bins.logs, 3)?;
        let mock = self.mock_long.1.clone();
        let single_url = self.redis.url();
        let cluster_url = cluster.url();
        let mut chunks: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut accepted: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut unclean = 0u32;
        for rep in 0..self.repeat() {
            for (side, url) in [(0usize, &single_url), (1, &cluster_url)] {
                let name = ["one", "cluster"][side];
                let stack = self.stack_on(
                    url,
                    &format!("c13-stream-{name}"),
                    Worker::PerCore,
                    0,
                    &mock,
                )?;
                let mut args = vec![
                    "--mode".into(),
                    "stream".into(),
                    "--url".into(),
                    stack.url.clone(),
                    "--sessions".into(),
                    "100".into(),
                    "--messages".into(),
                    "0".into(),
                    "--duration".into(),
                    self.seconds(),
                    "--warmup".into(),
                    WARMUP.to_string(),
                    "--pid".into(),
                    format!("gateway={}", stack.gateway.pid()),
                ];
                args.extend(self.auth_args());
                let label = format!("saturation, 100 sessions, store on {name} Redis");
                let report = self
                    .load(
                        &label,
                        &format!("c13-stream-{name}-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?;
                unclean += u32::from(!report.checks.clean);
                chunks[side].push(report.window.chunks_per_sec);
                drop(stack);

                let stack =
                    self.stack_on(url, &format!("c13-accept-{name}"), Worker::Off, 15, &mock)?;
                let mut args = vec![
                    "--mode".into(),
                    "accept".into(),
                    "--url".into(),
                    stack.url.clone(),
                    "--sessions".into(),
                    "50".into(),
                    "--messages".into(),
                    "400".into(),
                ];
                args.extend(self.auth_args());
                let label = format!("accept throughput, 50 sockets, store on {name} Redis");
                let report = self
                    .load(
                        &label,
                        &format!("c13-accept-{name}-{rep}"),
                        args,
                        Hooks::default(),
                    )
                    .await?;
                accepted[side].push(report.messages.completed as f64 / report.window.secs);
                drop(stack);
            }
        }
        let (c1, cn) = (median(&chunks[0]), median(&chunks[1]));
        let (a1, an) = (median(&accepted[0]), median(&accepted[1]));
        let pids: Vec<String> = cluster.pids().iter().map(u32::to_string).collect();
        drop(cluster);
        Ok(Figure {
            number: 13,
            name: "chunk events/s (100 sessions, coalescing off) and accepted messages/s (50 sockets): 3-master Redis Cluster vs one Redis".into(),
            system: format!("cluster: {cn:.0} chunks/s, {an:.0} msgs/s"),
            baseline: format!("one Redis: {c1:.0} chunks/s, {a1:.0} msgs/s"),
            result: format!("chunks {:.3}, accepts {:.3}", cn / c1, an / a1),
            target: "— (2 cores: the masters share the cores with everything else)".into(),
            met: None,
            details: vec![
                format!("chunks/s one Redis: {}; cluster: {}", list(&chunks[0]), list(&chunks[1])),
                format!("accepted msgs/s one Redis: {}; cluster: {}", list(&accepted[0]), list(&accepted[1])),
                format!("saturation runs not clean (lost, duplicated or reordered events): {unclean}"),
                format!("the cluster: 3 masters, no replicas, `redis-cli --cluster create` (pids {}); the gateway and worker reach it through `REDIS_URL=redis-cluster://...`, default `STORE_PARTITIONS=16`", pids.join(", ")),
            ],
        })
    }
}
