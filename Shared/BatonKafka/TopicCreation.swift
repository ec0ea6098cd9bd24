import CRdKafka
import Foundation

/// Admin operations over an existing client handle (blocking; call off the cooperative pool).
enum TopicCreation {
    static func create(_ topics: [TopicSpec], handle: RdKafkaHandle, configuration: KafkaConfiguration, timeout: Duration) throws {
        guard !topics.isEmpty else { return }
        let milliseconds = timeout.librdkafkaMilliseconds
        var errstr = [CChar](repeating: 0, count: 512)
        var newTopics: [OpaquePointer?] = []
        defer { for topic in newTopics { rd_kafka_NewTopic_destroy(topic) } }
        for spec in topics {
            guard let newTopic = rd_kafka_NewTopic_new(
                spec.name, Int32(spec.partitions ?? configuration.topicPartitions),
                Int32(configuration.topicReplicationFactor), &errstr, errstr.count)
            else {
                throw KafkaError(.topicCreation, "topic '\(spec.name)': \(cString(errstr))")
            }
            for (key, value) in spec.config.sorted(by: { $0.key < $1.key }) {
                _ = rd_kafka_NewTopic_set_config(newTopic, key, value)
            }
            newTopics.append(newTopic)
        }
        let queue = rd_kafka_queue_new(handle.pointer)!
        defer { rd_kafka_queue_destroy(queue) }
        let options = rd_kafka_AdminOptions_new(handle.pointer, RD_KAFKA_ADMIN_OP_CREATETOPICS)
        defer { rd_kafka_AdminOptions_destroy(options) }
        _ = rd_kafka_AdminOptions_set_operation_timeout(options, milliseconds, &errstr, errstr.count)
        _ = rd_kafka_AdminOptions_set_request_timeout(options, milliseconds, &errstr, errstr.count)
        rd_kafka_CreateTopics(handle.pointer, &newTopics, newTopics.count, options, queue)
        guard let event = rd_kafka_queue_poll(queue, milliseconds + 500) else {
            throw KafkaError(.topicCreation, "no answer to CreateTopics within \(timeout)", isRetriable: true)
        }
        defer { rd_kafka_event_destroy(event) }
        let eventError = rd_kafka_event_error(event)
        if eventError != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(.topicCreation, "CreateTopics failed", eventError, retriable: true)
        }
        guard let result = rd_kafka_event_CreateTopics_result(event) else {
            throw KafkaError(.topicCreation, "unexpected answer to CreateTopics")
        }
        var count = 0
        guard let results = rd_kafka_CreateTopics_result_topics(result, &count) else { return }
        var failures: [String] = []
        for index in 0..<count {
            let topicResult = results[index]
            let err = rd_kafka_topic_result_error(topicResult)
            if err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS { continue }
            let name = String(cString: rd_kafka_topic_result_name(topicResult))
            let message = rd_kafka_topic_result_error_string(topicResult).map { String(cString: $0) } ?? describe(err).text
            failures.append("'\(name)': \(message) [\(describe(err).name)]")
        }
        if !failures.isEmpty {
            throw KafkaError(.topicCreation, "cannot create " + failures.joined(separator: "; "))
        }
    }

    static func partitionCount(_ topic: String, handle: RdKafkaHandle, timeout: Duration) throws -> Int {
        guard let rkt = rd_kafka_topic_new(handle.pointer, topic, nil) else {
            throw KafkaError(.metadata, "cannot open topic '\(topic)'")
        }
        defer { rd_kafka_topic_destroy(rkt) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let err = rd_kafka_metadata(handle.pointer, 0, rkt, &metadata, timeout.librdkafkaMilliseconds)
        guard err == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            throw kafkaError(.metadata, "metadata of '\(topic)'", err, retriable: true)
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else { throw KafkaError(.metadata, "topic '\(topic)' is unknown") }
        let topicMetadata = metadata.pointee.topics[0]
        if topicMetadata.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw kafkaError(.metadata, "topic '\(topic)'", topicMetadata.err, retriable: true)
        }
        return Int(topicMetadata.partition_cnt)
    }
}
