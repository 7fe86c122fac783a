"""Analysis of finished runs behind `seqsent.compare`: discovery and loading (`runs`), statistics (`stats`),
reports (`report`) and the figure (`plots`)."""
